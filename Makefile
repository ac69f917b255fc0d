# grasp_autolabel: the two commands a new user needs are `make demo` and `make test`.
# Both install what they need first (idempotent; the first run takes a few minutes).
SHELL := /bin/bash
.DEFAULT_GOAL := help
IN_ENV := scripts/in-env.sh
PYTEST_ARGS ?=

.PHONY: help setup test demo clean

help:
	@echo "make setup   create .venv (ROS 2 wheels, colcon, torch pair), build the workspace"
	@echo "make test    setup, then run the whole test suite"
	@echo "make demo    setup, then run the demo on the simulated cell"
	@echo "make clean   remove .venv, build/, install/, log/ and demo output"

setup:
	@scripts/setup.sh

test: setup
	@$(IN_ENV) python -m pytest $(PYTEST_ARGS)

demo: setup
	@$(IN_ENV) python -m grasp_autolabel.cli.demo

clean:
	rm -rf .venv build install log demo .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -rf grasp_autolabel/*.egg-info
