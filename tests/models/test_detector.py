"""PersonDetector on a tiny YOLOS built from a config, saved and loaded like a user's model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from dreamframe_assets.models.detector import PersonDetector


def _tiny_yolos(folder: Path, labels: dict[int, str]) -> Path:
    from transformers import YolosConfig, YolosForObjectDetection, YolosImageProcessor

    torch.manual_seed(0)
    config = YolosConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                         image_size=[32, 32], patch_size=8, num_detection_tokens=6, id2label=labels,
                         label2id={v: k for k, v in labels.items()})
    model = YolosForObjectDetection(config)
    with torch.no_grad():  # every detection token says "person" with a box in the middle
        model.class_labels_classifier.layers[-1].bias.copy_(torch.tensor([-9.0] * len(labels) + [-9.0]))
        model.class_labels_classifier.layers[-1].bias[[k for k, v in labels.items() if v.lower() == "person"] or [0]] = 9.0
    model.save_pretrained(folder)
    YolosImageProcessor(size={"shortest_edge": 32, "longest_edge": 32}, do_pad=False).save_pretrained(folder)
    return folder


def test_people_boxes_are_in_pixels_left_to_right(tmp_path):
    folder = _tiny_yolos(tmp_path / "yolos", {0: "background", 1: "Person", 2: "dog"})
    detector = PersonDetector(str(folder), threshold=0.5, device="cpu")
    images = [np.random.default_rng(i).integers(0, 256, (48, 96, 3), dtype=np.uint8) for i in range(2)]
    found = detector.people(images)
    assert len(found) == 2 and all(len(boxes) == 6 for boxes in found)  # 6 detection tokens, all "person"
    for boxes in found:
        centres = [(b[0] + b[2]) / 2 for b in boxes]
        assert centres == sorted(centres)
        assert all(-1 <= b[0] <= b[2] <= 97 and -1 <= b[1] <= b[3] <= 49 for b in boxes)
    assert detector.people([]) == []


def test_a_detector_without_a_person_class_is_refused(tmp_path):
    folder = _tiny_yolos(tmp_path / "yolos", {0: "cat", 1: "dog"})
    with pytest.raises(ValueError, match="no 'person' class"):
        PersonDetector(str(folder), device="cpu").people([np.zeros((32, 32, 3), np.uint8)])
