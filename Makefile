# make up    — deploy the default all-in-one cloud on this machine (same as ./onestack up)
# make test  — install test dependencies and run the whole suite (lint, unit, end-to-end)
.PHONY: up test unit e2e lint bench clean

up:
	./onestack up

test:
	ONESTACK_TEST_EXTRAS=1 ./onestack --help >/dev/null
	.venv/bin/ruff check src tests bench
	.venv/bin/mypy
	.venv/bin/lint-imports
	.venv/bin/pytest -v -p no:cacheprovider tests

unit:
	ONESTACK_TEST_EXTRAS=1 ./onestack --help >/dev/null
	.venv/bin/pytest -v -p no:cacheprovider tests/unit

lint:
	ONESTACK_TEST_EXTRAS=1 ./onestack --help >/dev/null
	.venv/bin/ruff check src tests bench
	.venv/bin/mypy
	.venv/bin/lint-imports
