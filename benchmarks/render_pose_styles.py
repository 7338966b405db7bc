"""The pose-map styles side by side: docs/checks/pose_styles.png (see docs/pose_styles.md).

One hand-placed person (COCO-17 body, plus made-up hands and 68 face landmarks, which turbonext's own
detectors do not give) drawn at 512 x 512 as ``render_pose(style=...)`` for every style in
``POSE_STYLES``, and its face as ``render_face_landmarks(style="rain")``. CPU only, numpy + PIL.

    python benchmarks/render_pose_styles.py [--out docs/checks/pose_styles.png]
"""

import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from turbonext.pose import POSE_STYLES, Person, render_face_landmarks, render_pose
from turbonext.pose.keypoints import KEYPOINT_INDEX


SIZE = 512
# Facing the camera: the person's right side is on the image's left.
BODY = {
    "nose": (256, 104), "left_eye": (268, 92), "right_eye": (244, 92), "left_ear": (284, 98),
    "right_ear": (228, 98), "left_shoulder": (318, 160), "right_shoulder": (194, 160),
    "left_elbow": (372, 226), "right_elbow": (136, 214), "left_wrist": (398, 296), "right_wrist": (96, 150),
    "left_hip": (292, 300), "right_hip": (220, 300), "left_knee": (306, 392), "right_knee": (198, 392),
    "left_ankle": (312, 480), "right_ankle": (186, 480),
}


def face68(cx: float, cy: float, s: float) -> np.ndarray:
    """A plausible frontal 68-point (iBUG) face: jaw, brows, nose, eyes, lips; ``s`` = half the face width."""
    pts = []
    for i in range(17):  # jaw 0-16: from the image's left (the person's right) round the chin
        a = math.pi * (1.0 - i / 16)
        pts.append((cx + s * math.cos(a), cy + 0.15 * s + 1.05 * s * math.sin(a)))
    pts = [(x, cy + 0.15 * s + 1.05 * s * abs(math.sin(math.pi * i / 16))) for i, (x, _) in enumerate(pts)]
    for x0 in (-0.85, 0.15):  # brows 17-21 (image left), 22-26, each from left to right
        for k in range(5):
            pts.append((cx + s * (x0 + 0.7 * k / 4), cy - 0.55 * s - 0.12 * s * math.sin(math.pi * k / 4)))
    pts += [(cx, cy - 0.4 * s + 0.15 * s * k) for k in range(4)]  # nose bridge 27-30
    pts += [(cx + 0.1 * s * (k - 2), cy + 0.28 * s + 0.04 * s * (1 - abs(k - 2) / 2)) for k in range(5)]  # 31-35
    for ex in (-0.42, 0.42):  # eyes 36-41, 42-47: outer/inner corner, two upper, corner, two lower
        for a in (180, 120, 60, 0, 300, 240):
            r = math.radians(a)
            pts.append((cx + s * (ex + 0.17 * math.cos(r)), cy - 0.3 * s - 0.08 * s * math.sin(r)))
    for a in range(12):  # outer lips 48-59, from the left corner over the top
        r = math.radians(180 - 30 * a)
        pts.append((cx + 0.42 * s * math.cos(r), cy + 0.62 * s - 0.16 * s * math.sin(r)))
    for a in (180, 135, 90, 45, 0, 315, 270, 225):  # inner lips 60-67
        r = math.radians(a)
        pts.append((cx + 0.3 * s * math.cos(r), cy + 0.62 * s - 0.06 * s * math.sin(r)))
    assert len(pts) == 68
    return np.asarray(pts, np.float32)


def hand21(wrist: tuple[float, float], direction: float, spread: float = 0.3, length: float = 13.0) -> np.ndarray:
    """A fanned-out hand: the wrist, then thumb to little finger, 4 points each, around ``direction`` (rad)."""
    pts = [wrist]
    for f in range(5):
        a = direction + spread * (f - 2)
        base = (wrist[0] + 16 * math.cos(a), wrist[1] + 16 * math.sin(a))
        for k in range(4):
            pts.append((base[0] + k * length * math.cos(a), base[1] + k * length * math.sin(a)))
    return np.asarray(pts, np.float32)


def sample_person() -> Person:
    kp = np.zeros((17, 3), np.float32)
    for name, (x, y) in BODY.items():
        kp[KEYPOINT_INDEX[name]] = (x, y, 0.9)
    hands = np.stack([hand21(BODY["left_wrist"], math.radians(70)), hand21(BODY["right_wrist"], math.radians(-110))])
    face = face68(256, 98, 26)
    return Person(kp, hands=np.c_[hands.reshape(-1, 2), np.ones(42)].reshape(2, 21, 3), face=face)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "checks" / "pose_styles.png"))
    args = parser.parse_args()

    person = sample_person()
    panels = [(f'render_pose(style="{style}")', render_pose(person, SIZE, style=style)) for style in POSE_STYLES]
    # RAIN draws the face alone; zoom on it (landmarks scaled about the face centre) so its dots are visible.
    zoomed = person.transformed(scale=4.0, offset=(256 - 4.0 * 256, 256 - 4.0 * 98)).face
    panels.append(('render_face_landmarks(style="rain"), face x4', render_face_landmarks(zoomed, SIZE)))

    label_h, gap = 22, 6
    sheet = Image.new("RGB", (len(panels) * (SIZE + gap) - gap, SIZE + label_h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (label, image) in enumerate(panels):
        x = i * (SIZE + gap)
        sheet.paste(image, (x, label_h))
        draw.text((x + 6, 5), label, fill=(0, 0, 0))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    print(f"wrote {out} ({sheet.width} x {sheet.height})")


if __name__ == "__main__":
    main()
