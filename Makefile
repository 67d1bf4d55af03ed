# Prism: `make run` and `make test` work on a fresh Debian 12 machine with the Swift toolchain.
.PHONY: install build run test unit-test integration-test client-test fuzz-test image-test check-header check-layers bench bench-floor clean

CONFIG ?= config/prism.yaml

install:
	scripts/install.sh

build: install
	scripts/build.sh

run: build
	./dist/prism-gateway --config $(CONFIG)

# Every test: the ABI header, the folder layering, Swift unit tests, the real binary and plugins over real sockets, then
# a short run of every libFuzzer target with its committed corpus replayed (Tests/fuzz).
test: build check-header check-layers unit-test integration-test client-test fuzz-test

# The real image: the Dockerfile's runtime stage built from dist/ with buildah and run with podman
# as its own unprivileged USER (no Docker engine needed; root for rootful podman).
image-test: build
	scripts/image-test.sh

check-header:
	scripts/check-header.sh

# PrismHost's and PrismCore's folders are layers (Config ... Plugins, Pipeline ... Server): each uses only those below it.
check-layers:
	scripts/check-layers.py

# Against the release build `build` made (scripts/build.sh builds the test targets with it): the
# package is built once. Tests reach internals through `package` declarations; `@testable import`
# would fail there ("not compiled for testing"), as the shipped modules are not.
unit-test: build
	swift test -c release --skip-build --disable-swift-testing

integration-test:
	python3 -m pytest -q Tests/integration

# The Python client (clients/python): its tests against dist/ (the seed snippets, streams, async,
# extras, admin API, errors; the wheel built and `pip install ./clients/python` into a scratch
# virtualenv), then mypy --strict on the package and on typed user code.
client-test:
	python3 -m pytest -q clients/python/tests
	cd clients/python && python3 -m mypy --strict src tests/typed_usage.py

fuzz-test:
	scripts/fuzz.sh --short

# The upstream half alone (libcurl), beside the nginx proxy and Prism: bench/README.md.
bench-floor: build
	bash bench/floor/run.sh

bench: build
	PRISM_OTEL=1 bench/run.sh
	swift build -c release --product prism-routing-bench && .build/release/prism-routing-bench dist/plugins
	swift build -c release --product prism-state-bench && .build/release/prism-state-bench
	swift build -c release --product prism-metrics-bench && .build/release/prism-metrics-bench
	bench/middleware.sh
	bench/dialects.sh
	python3 bench/per_event.py

clean:
	rm -rf .build dist
