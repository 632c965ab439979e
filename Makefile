# The README's two commands: `make demo` (set up + run the main job) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
DPDE := $(VENV)/bin/dpde
OUT ?= outputs/demo

.PHONY: setup demo test test-fast lint benchmark clean

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	scripts/setup.sh $(VENV)
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(DPDE) models
	$(DPDE) predict examples/room.jpg -o $(OUT)/ --preview --save-unfused --overwrite --json
	$(DPDE) pointcloud examples/room.jpg -o $(OUT)/room.ply \
		--intrinsics examples/room_intrinsics.json --overwrite --json
	@echo "dpde demo: depth (16-bit PNG, mm) $(OUT)/room.png, colour preview" \
		"$(OUT)/room_color.png, unfused depth $(OUT)/room_unfused.png, point cloud $(OUT)/room.ply"

test: setup
	$(PY) -m pytest -q
	$(PY) -m ruff check dpde_cli tests benchmarks scripts

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup
	$(PY) -m ruff check dpde_cli tests benchmarks scripts
	$(PY) -m ruff format --check dpde_cli tests benchmarks scripts

clean:
	rm -rf $(VENV) outputs .pytest_cache
