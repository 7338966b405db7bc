"""Speed benchmarks: the stream against its baselines (:mod:`~turbonext.benchmarks.stream`) and the app's
webcam path end to end (:mod:`~turbonext.benchmarks.live`). Run them with ``turbonext bench``."""
