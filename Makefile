# `make setup` installs into the active Python (use a venv); `make test` is what CI runs.
PYTHON ?= python3

setup:
	$(PYTHON) -m pip install -r requirements.txt
	# lpips declares torchvision, whose PyPI build breaks beside the CPU torch wheel: its heads are
	# installed alone and LPIPS is used only where a torchvision backbone loads (GPU images).
	$(PYTHON) -m pip install --no-deps lpips==0.1.4
	$(PYTHON) -m pip install --no-deps --no-build-isolation -e .

test:
	$(PYTHON) -m pytest -q -m "not gpu"

.PHONY: setup test
