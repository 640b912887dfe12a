"""People in a picture: a transformers object detector (DETR, YOLOS, RT-DETR, ...), for
cropping each character out of a frame that shows several."""

from __future__ import annotations

from typing import Any

import numpy as np

from .device import READERS, auto_device, load_once

Box = tuple[float, float, float, float]


class PersonDetector:
    """Boxes of the "person" class above ``threshold``, left to right, of a hub id or local folder."""

    def __init__(self, model: str, threshold: float = 0.5, device: str = "auto"):
        if not model:
            raise ValueError("a detector is needed (eval_scores.person_detector: a hub id or local folder)")
        self.model_name, self.threshold, self.device_name = model, threshold, device

    def identity(self) -> str:
        return f"person-detector|{self.model_name}|{self.threshold}"

    def _load(self) -> tuple[Any, Any, int]:
        device = auto_device(self.device_name)

        def load() -> tuple[Any, Any, int]:
            from transformers import AutoImageProcessor, AutoModelForObjectDetection

            try:
                model = AutoModelForObjectDetection.from_pretrained(self.model_name, use_safetensors=True)
            except ImportError as exc:  # e.g. a DETR with a timm backbone, timm not installed
                raise ValueError(f"eval_scores.person_detector: {self.model_name!r} needs a package that is not "
                                 f"installed ({str(exc).splitlines()[0][:160]}); a YOLOS or RT-DETR detector needs none") from None
            model = model.to(device).eval()
            labels = {str(name).lower(): int(i) for i, name in model.config.id2label.items()}
            if "person" not in labels:
                raise ValueError(f"eval_scores.person_detector: {self.model_name!r} has no 'person' class "
                                 f"(its labels: {sorted(labels)[:8]}...)")
            return AutoImageProcessor.from_pretrained(self.model_name), model, labels["person"]

        return load_once(("person-detector", self.model_name, device), load, stages=READERS)

    def people(self, images: list[np.ndarray]) -> list[list[Box]]:
        """Per image, the person boxes (x0, y0, x1, y1 in pixels) sorted by their centre, left to right."""
        import torch

        if not images:
            return []
        processor, model, person = self._load()
        inputs = processor(images=list(images), return_tensors="pt").to(model.device)
        with torch.no_grad():
            outputs = model(**inputs)
        found = processor.post_process_object_detection(
            outputs, threshold=self.threshold, target_sizes=[img.shape[:2] for img in images])
        boxes = []
        for result in found:
            mine = [tuple(float(v) for v in box) for box, label in zip(result["boxes"].tolist(), result["labels"].tolist())
                    if int(label) == person]
            boxes.append(sorted(mine, key=lambda b: (b[0] + b[2]) / 2))
        return boxes
