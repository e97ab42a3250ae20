#!/usr/bin/env python3
"""Drives a running wisp with the real `tritonclient[http]` (Open Inference Protocol V2).

Run by control-plane/tests/e2e_tritonclient.rs, which starts `wisp serve`, deploys the
fixtures and passes, in the environment:

  WISP_URL         host:port of the server (tritonclient takes no scheme)
  WISP_API_KEY     an API key with only the `predict` scope
  WISP_REFERENCES  path of tests/fixtures/references.json
  WISP_MODELS      comma-separated `model=fixture.onnx` pairs that are deployed

Checks health, server and model metadata, readiness, then infers every model in the
client's default binary mode and in JSON mode, and compares with onnxruntime's outputs.
Exits non-zero (with an assertion traceback) on the first difference.
"""

import json
import os
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

NUMPY = {"float32": np.float32, "int64": np.int64}
V2_DATATYPE = {"float32": "FP32", "int64": "INT64"}


def expect_error(status, call):
    try:
        call()
    except InferenceServerException as error:
        assert error.status() == str(status), (status, error.status(), error.message())
        assert error.message(), "the error has a message"
        return error
    raise AssertionError(f"expected HTTP {status}")


def check_outputs(result, refs, names, label):
    for name in names:
        want = refs["outputs"][name]
        got = result.as_numpy(name)
        assert got is not None, f"{label}: no output {name}"
        expected = np.array(want["data"], dtype=NUMPY[want["dtype"]]).reshape(want["shape"])
        assert got.dtype == expected.dtype, (label, name, got.dtype, expected.dtype)
        assert got.shape == expected.shape, (label, name, got.shape, expected.shape)
        if want["dtype"] == "int64":
            assert np.array_equal(got, expected), (label, name, got, expected)
        else:
            assert np.allclose(got, expected, atol=1e-5, rtol=0), (label, name, got, expected)


def make_inputs(refs, binary):
    inputs = []
    for name, tensor in refs["inputs"].items():
        array = np.array(tensor["data"], dtype=NUMPY[tensor["dtype"]]).reshape(tensor["shape"])
        entry = httpclient.InferInput(name, list(array.shape), V2_DATATYPE[tensor["dtype"]])
        entry.set_data_from_numpy(array, binary_data=binary)
        inputs.append(entry)
    return inputs


def check_model(client, auth, model, refs):
    assert client.is_model_ready(model, headers=auth()), f"{model} is ready"
    assert client.is_model_ready(model, "1", headers=auth()), f"{model} v1 is ready"
    metadata = client.get_model_metadata(model, headers=auth())
    assert metadata["name"] == model, metadata
    assert metadata["versions"] == ["1"], metadata
    for side in ("inputs", "outputs"):
        want = [
            {"name": t["name"], "datatype": V2_DATATYPE[t["dtype"]], "shape": t["shape"]}
            for t in refs["signature"][side]
        ]
        assert metadata[side] == want, (model, side, metadata[side], want)

    outputs = list(refs["outputs"])
    for binary in (True, False):
        mode = "binary" if binary else "json"
        requested = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in outputs]
        result = client.infer(
            model,
            make_inputs(refs, binary),
            outputs=requested,
            request_id=f"{model}-{mode}",
            headers=auth(),
        )
        response = result.get_response()
        assert response["model_name"] == model, response
        assert response["model_version"] == "1", response
        assert response["id"] == f"{model}-{mode}", response
        for output in response["outputs"]:
            has_binary = "binary_data_size" in output.get("parameters", {})
            assert has_binary == binary, (mode, output)
            assert ("data" in output) != binary, (mode, output)
        check_outputs(result, refs, outputs, f"{model} {mode}")

    # The client's default: binary inputs, no outputs named, so all come back binary.
    result = client.infer(model, make_inputs(refs, True), model_version="1", headers=auth())
    check_outputs(result, refs, outputs, f"{model} default")

    # Only the last output, as JSON.
    last = outputs[-1]
    result = client.infer(
        model,
        make_inputs(refs, True),
        outputs=[httpclient.InferRequestedOutput(last, binary_data=False)],
        headers=auth(),
    )
    assert [o["name"] for o in result.get_response()["outputs"]] == [last]
    check_outputs(result, refs, [last], f"{model} selected")


def main():
    url = os.environ["WISP_URL"]
    key = os.environ["WISP_API_KEY"]
    with open(os.environ["WISP_REFERENCES"]) as f:
        references = json.load(f)
    models = dict(pair.split("=", 1) for pair in os.environ["WISP_MODELS"].split(","))
    # A new dict for every call: tritonclient writes Inference-Header-Content-Length into
    # the headers it is given, which would leak a binary request's length into the next.
    def auth():
        return {"Authorization": f"Bearer {key}"}

    client = httpclient.InferenceServerClient(url)

    # Health and server metadata need no credentials.
    assert client.is_server_live()
    assert client.is_server_ready()
    server = client.get_server_metadata()
    assert server["name"] == "wisp", server
    assert "binary_tensor_data" in server["extensions"], server

    for model, fixture in models.items():
        check_model(client, auth, model, references[fixture])
        print(f"ok: {model} ({fixture})")

    # Errors come back as InferenceServerException with the server's status and message.
    model, fixture = next(iter(models.items()))
    refs = references[fixture]
    expect_error(401, lambda: client.get_model_metadata(model))
    expect_error(401, lambda: client.infer(model, make_inputs(refs, True)))
    expect_error(404, lambda: client.get_model_metadata("no-such-model", headers=auth()))
    expect_error(404, lambda: client.infer("no-such-model", make_inputs(refs, True), headers=auth()))
    assert not client.is_model_ready("no-such-model", headers=auth())
    wrong = httpclient.InferInput("no-such-input", [1, 4], "FP32")
    wrong.set_data_from_numpy(np.zeros((1, 4), dtype=np.float32))
    error = expect_error(400, lambda: client.infer(model, [wrong], headers=auth()))
    assert "no such input" in error.message(), error.message()
    print("ok: errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
