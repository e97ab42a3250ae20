"""A realistic MLflow training script, run unchanged against wisp and asserting all it reads.

The environment points the official client at wisp: MLFLOW_TRACKING_URI and
MLFLOW_TRACKING_TOKEN (a wisp API key). It trains two scikit-learn classifiers on iris,
logs params, metrics over steps, tags and artifacts, logs each with the ONNX flavour (the
first as MLflow's quick start does: a StandardScaler + LogisticRegression pipeline exported
with skl2onnx's defaults, ZipMap included; the second with `zipmap=False`),
registers both as versions of one model, points the alias `champion` at version 1, then
reads everything back through the client (runs, search, history, registry, artifacts).

Usage: mlflow_client_test.py SUMMARY.json — the summary (model name, versions, inputs and
expected outputs) is what control-plane/tests/e2e_mlflow.rs deploys and predicts with.
"""

import hashlib
import json
import os
import sys
import tempfile

import mlflow
import mlflow.data
import mlflow.onnx
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

EXPERIMENT = "iris-e2e"
MODEL = "iris-classifier"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def expect_error(code, call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except MlflowException as e:
        assert e.error_code == code, f"expected {code}, got {e.error_code}: {e}"
        return e
    raise AssertionError(f"expected {code} from {call.__name__}")


def log_training_data(X, y):
    """Logs the training set as MLflow's documentation does: the file as an artifact and
    the pandas data set built from it (its source the local file) as the run's training
    input. Also logged: the same data set with the artifact's download URL on the tracking
    server as its source, one whose profile does not match the file, and one built in code
    (no file). wisp's drift references are taken from them (control-plane/tests/e2e_mlflow.rs)."""
    df = pd.DataFrame(X, columns=FEATURES)
    df["species"] = y
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "iris_train.csv")
        df.to_csv(path, index=False)
        mlflow.log_artifact(path, artifact_path="data")
        train = mlflow.data.from_pandas(df, source=path, name="iris-train", targets="species")
        mlflow.log_input(train, context="training")
        head = mlflow.data.from_pandas(df.head(50), source=path, name="iris-head")
        mlflow.log_input(head, context="training")
    artifact = mlflow.get_artifact_uri("data/iris_train.csv")
    assert artifact.startswith("mlflow-artifacts:/"), artifact
    url = (
        os.environ["MLFLOW_TRACKING_URI"].rstrip("/")
        + "/api/2.0/mlflow-artifacts/artifacts/"
        + artifact.split(":", 1)[1].lstrip("/")
    )
    mlflow.log_input(mlflow.data.from_pandas(df, source=url, name="iris-url"), context="validation")
    mlflow.log_input(mlflow.data.from_pandas(df, name="iris-code"), context="training")


def train(client, X, y, C, run_name, quick_start):
    """One training run; returns (run_id, model_info, sklearn model, onnx bytes). With
    `quick_start`, the model is a scaler + logistic regression pipeline exported with
    skl2onnx's default options (a ZipMap on the probabilities)."""
    classifier = LogisticRegression(C=C, max_iter=300)
    model = make_pipeline(StandardScaler(), classifier) if quick_start else classifier
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.log_params({"C": C, "max_iter": 300, "solver": "lbfgs"})
        if quick_start:
            log_training_data(X, y)
        mlflow.set_tags({"purpose": "e2e", "framework": "sklearn"})
        # A learning curve: warm-started fits over steps.
        for step, iters in enumerate([5, 10, 20, 40, 300]):
            partial = LogisticRegression(C=C, max_iter=iters).fit(X, y)
            mlflow.log_metric("train_accuracy", float(partial.score(X, y)), step=step)
        model.fit(X, y)
        accuracy = float(model.score(X, y))
        mlflow.log_metric("accuracy", accuracy)
        mlflow.log_dict({"classes": [int(c) for c in classifier.classes_]}, "meta/classes.json")
        with tempfile.TemporaryDirectory() as tmp:
            notes = os.path.join(tmp, "README.txt")
            with open(notes, "w") as f:
                f.write(f"logistic regression, C={C}\n")
            mlflow.log_artifact(notes, artifact_path="notes")
        options = None if quick_start else {id(model): {"zipmap": False}}
        onnx_model = to_onnx(model, X[:1], options=options)
        signature = infer_signature(X, model.predict(X))
        info = mlflow.onnx.log_model(onnx_model, name="model", signature=signature)
    return run.info.run_id, info, model, onnx_model.SerializeToString(), accuracy


def main():
    summary_path = sys.argv[1]
    assert os.environ["MLFLOW_TRACKING_URI"].startswith("http://127.0.0.1:")
    client = MlflowClient()

    # Experiments.
    assert client.get_experiment_by_name(EXPERIMENT) is None
    experiment_id = mlflow.create_experiment(EXPERIMENT, tags={"team": "ml"})
    expect_error("RESOURCE_ALREADY_EXISTS", mlflow.create_experiment, EXPERIMENT)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment.experiment_id == experiment_id
    assert experiment.tags["team"] == "ml", experiment.tags
    assert experiment.artifact_location.startswith("mlflow-artifacts:/")
    found = client.search_experiments(filter_string=f"name = '{EXPERIMENT}'")
    assert [e.experiment_id for e in found] == [experiment_id]
    expect_error("RESOURCE_DOES_NOT_EXIST", client.get_experiment, "987654")
    mlflow.set_experiment(EXPERIMENT)

    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    run_a, info_a, model_a, onnx_a, accuracy_a = train(client, X, y, 1.0, "logreg-c1", True)
    run_b, info_b, model_b, onnx_b, accuracy_b = train(client, X, y, 0.01, "logreg-c001", False)
    assert accuracy_a > 0.9 and accuracy_a > accuracy_b, (accuracy_a, accuracy_b)

    # Runs read back.
    run = client.get_run(run_a)
    assert run.info.status == "FINISHED", run.info.status
    assert run.info.run_name == "logreg-c1"
    assert run.info.experiment_id == experiment_id
    assert run.data.params == {"C": "1.0", "max_iter": "300", "solver": "lbfgs"}, run.data.params
    assert run.data.metrics["accuracy"] == accuracy_a
    assert run.data.tags["purpose"] == "e2e"
    assert run.data.tags["mlflow.runName"] == "logreg-c1"
    assert [o.model_id for o in run.outputs.model_outputs] == [info_a.model_id]
    inputs = [(d.dataset.name, d.dataset.source_type) for d in run.inputs.dataset_inputs]
    assert inputs == [
        ("iris-train", "local"),
        ("iris-head", "local"),
        ("iris-url", "http"),
        ("iris-code", "code"),
    ], inputs
    history = client.get_metric_history(run_a, "train_accuracy")
    assert [m.step for m in history] == [0, 1, 2, 3, 4], history
    assert all(0.0 <= m.value <= 1.0 for m in history)
    assert run.data.metrics["train_accuracy"] == history[-1].value

    # Params are write-once: the same value again is fine, another is refused.
    client.log_param(run_a, "C", "1.0")
    expect_error("INVALID_PARAMETER_VALUE", client.log_param, run_a, "C", "2.0")

    # log_batch at MLflow's limit (the client splits larger batches itself; the server's
    # refusal of an oversized one is checked in control-plane/tests/api_mlflow.rs).
    batch = [Metric("batch_metric", float(i), 1_700_000_000_000 + i, i) for i in range(1000)]
    client.log_batch(run_a, metrics=batch)
    history = client.get_metric_history(run_a, "batch_metric")
    assert [(m.step, m.value) for m in history] == [(i, float(i)) for i in range(1000)]

    # Search: filters on metrics, params, tags and attributes; ordering; paging.
    runs = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string="metrics.accuracy > 0.9 and params.C = '1.0' and tags.purpose = 'e2e'",
        output_format="list",
    )
    assert [r.info.run_id for r in runs] == [run_a], runs
    runs = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string="attributes.status = 'FINISHED' and params.solver LIKE 'lb%'",
        order_by=["metrics.accuracy ASC"],
        output_format="list",
    )
    assert [r.info.run_id for r in runs] == [run_b, run_a]
    page = client.search_runs([experiment_id], max_results=1, order_by=["metrics.accuracy DESC"])
    assert [r.info.run_id for r in page] == [run_a] and page.token
    page = client.search_runs(
        [experiment_id], max_results=1, order_by=["metrics.accuracy DESC"], page_token=page.token
    )
    assert [r.info.run_id for r in page] == [run_b] and not page.token
    assert mlflow.search_runs([experiment_id], "metrics.accuracy > 2", output_format="list") == []
    expect_error("INVALID_PARAMETER_VALUE", client.search_runs, [experiment_id], "metrics.accuracy >")

    # Artifacts of the run.
    listed = sorted(f.path for f in client.list_artifacts(run_a))
    assert listed == ["data", "meta", "notes"], listed
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_a, artifact_path="notes/README.txt", dst_path=tmp
        )
        with open(path) as f:
            assert f.read() == "logistic regression, C=1.0\n"
    assert mlflow.artifacts.load_dict(f"runs:/{run_a}/meta/classes.json") == {"classes": [0, 1, 2]}

    # A large artifact, streamed both ways.
    with tempfile.TemporaryDirectory() as tmp:
        big = os.path.join(tmp, "big.bin")
        data = os.urandom(24 * 1024 * 1024)
        with open(big, "wb") as f:
            f.write(data)
        client.log_artifact(run_b, big, artifact_path="data")
        back = client.download_artifacts(run_b, "data/big.bin", os.path.join(tmp, "out"))
        with open(back, "rb") as f:
            assert hashlib.sha256(f.read()).digest() == hashlib.sha256(data).digest()

    # Logged models (MLflow 3).
    logged = client.get_logged_model(info_a.model_id)
    assert logged.source_run_id == run_a and logged.experiment_id == experiment_id
    files = sorted(a.path for a in mlflow.artifacts.list_artifacts(f"models:/{info_a.model_id}"))
    assert "MLmodel" in files and "model.onnx" in files, files

    # Registry: two versions, an alias, read back.
    v1 = mlflow.register_model(f"models:/{info_a.model_id}", MODEL)
    v2 = mlflow.register_model(f"models:/{info_b.model_id}", MODEL)
    assert (v1.version, v2.version) == ("1", "2"), (v1.version, v2.version)
    assert v1.status == "READY"
    client.set_registered_model_alias(MODEL, "champion", "1")
    client.set_registered_model_tag(MODEL, "task", "classification")
    client.set_model_version_tag(MODEL, "2", "candidate", "yes")
    by_alias = client.get_model_version_by_alias(MODEL, "champion")
    assert by_alias.version == "1" and by_alias.run_id == run_a, by_alias
    registered = client.get_registered_model(MODEL)
    assert registered.aliases == {"champion": "1"}, registered.aliases
    assert registered.tags == {"task": "classification"}
    assert client.get_model_version(MODEL, "2").tags == {"candidate": "yes"}
    versions = client.search_model_versions(f"name = '{MODEL}'")
    assert sorted(v.version for v in versions) == ["1", "2"]
    assert [m.name for m in client.search_registered_models(f"name LIKE 'iris%'")] == [MODEL]
    expect_error("RESOURCE_DOES_NOT_EXIST", client.get_model_version, MODEL, "9")

    # The registered model's files, downloaded by alias and loaded by the flavour.
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(f"models:/{MODEL}@champion", dst_path=tmp)
        with open(os.path.join(local, "model.onnx"), "rb") as f:
            assert f.read() == onnx_a
    loaded = mlflow.onnx.load_model(f"models:/{MODEL}/2")
    assert loaded.SerializeToString() == onnx_b

    sample = X[[0, 60, 120]]
    summary = {
        "model": MODEL,
        "input": sample.tolist(),
        "expected": {
            # The quick-start export names its outputs skl2onnx's default way, and its
            # ZipMap is served as the probability tensor it wraps.
            "1": {
                "label_output": "output_label",
                "probabilities_output": "output_probability",
                "label": model_a.predict(sample).tolist(),
                "probabilities": model_a.predict_proba(sample).ravel().tolist(),
            },
            "2": {
                "label_output": "label",
                "probabilities_output": "probabilities",
                "label": model_b.predict(sample).tolist(),
                "probabilities": model_b.predict_proba(sample).ravel().tolist(),
            },
        },
        "run_id": run_a,
        "features": FEATURES,
    }
    with open(summary_path, "w") as f:
        json.dump(summary, f)
    print("mlflow client test: all assertions passed")


if __name__ == "__main__":
    main()
