-- Which engine runs a deployment's ONNX graphs: `tract`, `onnxruntime` or `auto`
-- (onnxruntime for a graph tract refuses). Existing deployments keep running on tract.
ALTER TABLE deployments ADD COLUMN backend TEXT NOT NULL DEFAULT 'tract'
    CHECK (backend IN ('tract', 'onnxruntime', 'auto'));
