# Rebuild the bundled default model and the example images from train/ + export/.
#
#   make default-model    # train the improved CNN (if runs/cnn-improved/model.pt is missing), export it INT8
#   make examples         # the first Fashion-MNIST test image of each class -> examples/*.png
#   make image-model      # default.onnx -> default.image.onnx (decoded image in, preprocessing in the graph)
#
# Reproducible: training is seeded, calibration images are a seeded sample, and the export date in the
# metadata is the last commit's time (SOURCE_DATE_EPOCH), so the same checkpoint gives the same bytes.

PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
DATA_DIR ?= /usr/share/datasets/fashion-mnist
RUN ?= runs/cnn-improved
MODEL := edgeinfer/models/default.onnx
IMAGE_MODEL := $(MODEL:.onnx=.image.onnx)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
export SOURCE_DATE_EPOCH

.PHONY: default-model examples image-model

default-model: $(RUN)/model.pt
	$(PYTHON) export/to_onnx.py $(RUN)/model.pt --out $(MODEL) --report $(MODEL:.onnx=.json) \
		--quantize int8 --fc-bits 4 --keep-float first_conv --calibration-method percentile --calibration-size 1000

$(RUN)/model.pt:
	$(PYTHON) train/train_cnn.py --preset improved --out $(RUN) --data-dir $(DATA_DIR)

examples:
	$(PYTHON) export/examples.py --out examples --data-dir $(DATA_DIR)

image-model:
	$(PYTHON) -m export.image_model $(MODEL) --out $(IMAGE_MODEL)
