# The two commands of the README: `make run` and `make test`.
.PHONY: run test setup setup-test lint typecheck gen configdoc bench

run: setup
	scripts/run

test: setup-test
	scripts/test

setup:
	scripts/bootstrap

setup-test:
	scripts/bootstrap --test

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck: setup
	.venv/bin/mypy

# Regenerate code from proto/ (commit the result).
gen: setup
	scripts/gen

# Regenerate docs/configuration.md from the settings classes (commit the result).
configdoc: setup
	.venv/bin/python tools/configdoc.py

bench: setup-test
	.venv/bin/python tests/benchmarks/pipeline.py
	.venv/bin/python tests/benchmarks/providers_overhead.py
	.venv/bin/python tests/benchmarks/webrtc_gateway.py
	.venv/bin/python tests/benchmarks/speech_accuracy.py
	.venv/bin/python tests/benchmarks/cluster.py
	.venv/bin/python tests/benchmarks/connectors.py
	.venv/bin/python tests/benchmarks/webhooks.py
	.venv/bin/python tests/benchmarks/pipeline.py --database postgres --capacity null:10,50,100,200 whisper:1,2,4 deepgram:10,50,100
