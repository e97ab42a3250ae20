# Developer entry points. The two that matter:
#   make serve   run the platform (embedded libSQL + local storage under ./wisp-data)
#   make test    run the whole test suite (installs what the tests need first)

.PHONY: serve test test-env lint fmt bench bench-env

serve:
	cargo run --release -p wisp -- serve

# The second run: the coverage suites (native and through the router) on the onnxruntime
# backend, with the library of the onnxruntime wheel test-env installed; it fails when the
# library is missing.
test: test-env
	cargo test --workspace --locked
	ORT_DYLIB_PATH="$$(./scripts/ort-dylib.sh)" && export ORT_DYLIB_PATH && \
	  cargo test --workspace --locked --features wisp/onnxruntime \
	    --test onnx_ml --test exporters --test api_model_coverage

# Tools and services the tests need beyond cargo (the wasm32-wasip2 target is installed
# by rust-toolchain.toml and the guest build itself).
test-env:
	./scripts/test-env.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

fmt:
	cargo fmt --all

# The benchmark programs behind docs/benchmarks.md (release builds; several minutes each).
bench: bench-env
	cargo bench -p wisp-host --bench runtime
	cargo bench -p wisp --bench metering
	cargo build --release -p wisp
	./scripts/bench-serving.py

bench-env:
	./scripts/bench-env.sh
