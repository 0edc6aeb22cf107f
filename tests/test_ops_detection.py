"""Checks of the detection ops beyond tests/opcases/detection.py's tables: RoiAlign's max mode (which torch
lacks) against finite differences, and NonMaxSuppression against boxes whose overlaps are worked out here."""

from __future__ import annotations

import numpy as np
import pytest

import cgtools
from opcases.detection import FINITE_DIFFERENCE_CASES
from opcheck import check_finite_differences, params


@pytest.mark.parametrize("c", params(FINITE_DIFFERENCE_CASES))
def test_gradient_matches_finite_differences(c):
    check_finite_differences(c)


def nms(iou_threshold, most=10, score_threshold=None, boxes=None):
    """NonMaxSuppression over one image and class of three boxes: A and B overlap with IoU 81/119 = 0.68,
    C overlaps neither; scores A 0.9, B 0.8, C 0.7."""
    boxes = [[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]] if boxes is None else boxes
    constants = [{"name": "most", "dtype": "int64", "value": [most]}, {"name": "iou", "value": [iou_threshold]}]
    if score_threshold is not None:
        constants.append({"name": "least", "value": [score_threshold]})
    graph = cgtools.load({
        "cgtools": "1.0", "inputs": [{"name": "boxes"}, {"name": "scores"}], "constants": constants,
        "nodes": [{"op": "NonMaxSuppression", "inputs": ["boxes", "scores", "most", "iou"] + ["least"] * (
            score_threshold is not None), "outputs": ["kept"]}],
        "outputs": ["kept"]})
    run = graph.run({"boxes": np.array([boxes], float), "scores": np.array([[[0.9, 0.8, 0.7]]])}, backward=False)
    return run.values["kept"][:, 2].tolist()


@pytest.mark.parametrize("iou, most, least, kept", [
    (0.5, 10, None, [0, 2]),  # B overlaps A too much
    (0.7, 10, None, [0, 1, 2]),  # 0.68 is not above 0.7
    (0.7, 2, None, [0, 1]),  # the two best
    (0.1, 10, 0.75, [0]),  # C scores too low, B is suppressed
    (0.5, 0, None, []),  # by default no box at all
])
def test_non_max_suppression_keeps_the_best_boxes_that_do_not_overlap(iou, most, least, kept):
    assert nms(iou, most, least) == kept


def test_non_max_suppression_reads_corners_in_either_order():
    assert nms(0.5, boxes=[[10, 10, 0, 0], [1, 11, 11, 1], [30, 20, 20, 30]]) == [0, 2]


def test_non_max_suppression_says_what_shapes_it_needs():
    with pytest.raises(cgtools.CgError, match=r"boxes \(batches, boxes, 4\)"):
        nms(0.5, boxes=[[0, 0, 10], [1, 1, 11], [20, 20, 30]])
