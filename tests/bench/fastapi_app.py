"""The usual Python serving stack, as the baseline for wisp's serving benchmark.

FastAPI + onnxruntime under uvicorn, serving one ONNX model with the same JSON request and
response shapes as wisp's predict endpoint: `{"inputs": {name: nested array}}` in,
`{"outputs": {name: {"dtype", "shape", "data"}}}` out.

    WISP_BENCH_MODEL=tests/fixtures/digits_mlp.onnx uvicorn fastapi_app:app --workers 2
"""

import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI, Request

MODEL = os.environ["WISP_BENCH_MODEL"]
session = ort.InferenceSession(MODEL, providers=["CPUExecutionProvider"])
input_types = {i.name: np.float32 if "float" in i.type else np.int64 for i in session.get_inputs()}
output_names = [o.name for o in session.get_outputs()]

app = FastAPI()


@app.post("/predict")
async def predict(request: Request):
    body = await request.json()
    feeds = {name: np.asarray(value, dtype=input_types[name]) for name, value in body["inputs"].items()}
    outputs = session.run(output_names, feeds)
    return {
        "outputs": {
            name: {"dtype": str(value.dtype), "shape": list(value.shape), "data": value.ravel().tolist()}
            for name, value in zip(output_names, outputs)
        }
    }
