"""Pose: COCO-17 keypoints, the pose-map renderers, detectors, smoothing and person masks.

``render_pose(people, style=...)`` draws turbonext's rainbow COCO-17 map (default) or the DWPose /
OpenPose-18 map of public pose-transfer checkpoints (``POSE_STYLES``); ``render_face_landmarks`` draws
RAIN's face-landmark condition (docs/pose_styles.md).

Light to import: numpy and PIL only. Detectors and segmenters import ultralytics / mediapipe
lazily, when one is built (``pip install "turbonext[pose]"``).
"""

from __future__ import annotations

from turbonext.pose.keypoints import (
    COCO_KEYPOINTS,
    FACE_KEYPOINTS,
    FLIP_INDEX,
    KEYPOINT_INDEX,
    NUM_FACE_LANDMARKS,
    NUM_HAND_KEYPOINTS,
    NUM_KEYPOINTS,
    OPENPOSE_KEYPOINTS,
    Person,
    as_people,
    coco_to_openpose,
    people_from_array,
    people_to_array,
)
from turbonext.pose.render import (
    FACE_COLORS,
    FACE_STYLES,
    LIMB_COLORS,
    LIMBS,
    OPENPOSE_COLORS,
    OPENPOSE_LIMBS,
    POSE_STYLES,
    RAIN_FACE_PATTERNS,
    render_face_landmarks,
    render_pose,
)
from turbonext.utils.lazy import lazy_getattr


# Names from modules that may not exist yet or that are heavier; imported on first use.
_LAZY = {
    "PoseDetector": "turbonext.pose.backends",
    "YoloPoseDetector": "turbonext.pose.detectors",
    "MediaPipePoseDetector": "turbonext.pose.detectors",
    "get_detector": "turbonext.pose.detectors",
    "OneEuroFilter": "turbonext.pose.smoothing",
    "PoseSmoother": "turbonext.pose.smoothing",
    "PersonSegmenter": "turbonext.pose.segmentation",
    "MediaPipeSegmenter": "turbonext.pose.segmentation",
    "YoloPersonSegmenter": "turbonext.pose.segmentation",
    "MainPersonTracker": "turbonext.pose.tracking",
    "PeopleTracker": "turbonext.pose.people_tracker",
    "SmoothedPoseDetector": "turbonext.pose.smoothing",
    "get_segmenter": "turbonext.pose.segmentation",
}

__all__ = [
    "COCO_KEYPOINTS",
    "FACE_COLORS",
    "FACE_KEYPOINTS",
    "FACE_STYLES",
    "FLIP_INDEX",
    "KEYPOINT_INDEX",
    "LIMBS",
    "LIMB_COLORS",
    "NUM_FACE_LANDMARKS",
    "NUM_HAND_KEYPOINTS",
    "NUM_KEYPOINTS",
    "OPENPOSE_COLORS",
    "OPENPOSE_KEYPOINTS",
    "OPENPOSE_LIMBS",
    "POSE_STYLES",
    "Person",
    "RAIN_FACE_PATTERNS",
    "as_people",
    "coco_to_openpose",
    "people_from_array",
    "people_to_array",
    "render_face_landmarks",
    "render_pose",
    *sorted(_LAZY),
]


__getattr__ = lazy_getattr(__name__, _LAZY)
