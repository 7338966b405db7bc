"""turbonext Gradio app: Upload (reference + driving video -> MP4) and Webcam (live) tabs.

UI only: the logic lives in :mod:`turbonext.jobs.clip` and :mod:`turbonext.jobs.live`. The model is
loaded once at start (``--model`` / ``TURBONEXT_MODEL``, default the embedded demo); if it cannot
be loaded the app still starts and says why. Run: ``python app.py [--model M] [--port 7860]``.
"""

from __future__ import annotations

import argparse
import os


if os.environ.get("SPACE_ID"):  # on Hugging Face Spaces only; must come before torch initialises CUDA
    try:
        import spaces
    except ImportError:  # a Space without the `spaces` package (e.g. a custom Docker image)
        spaces = None
else:
    spaces = None

import gradio as gr

from turbonext.jobs.clip import render_clip
from turbonext.jobs.live import LiveSession
from turbonext.loaders.hub import DEMO_MODEL_NAME
from turbonext.pipelines.inference import load_for_inference
from turbonext.streaming.session import COMPILE_MODES


STREAM_EVERY = 0.08  # s between webcam frames sent by the browser (~12 fps)
STREAM_TIME_LIMIT = 180  # s per webcam stream, so one user cannot hold the GPU forever
CPU_STREAM_WINDOW = 8  # on a CPU: the demo's uniform stream, 4 new frames against 4 finished ones (BENCHMARKS.md)
STREAM_CONCURRENCY = 4  # stream calls only submit/fetch; the GPU work is serialised by the pipeline lock
INTRO = ("# turbonext: real-time pose transfer\nUpload one photo of a person, then drive it with a video "
         "(**Upload**) or with your own moves in front of the camera (**Webcam**).")


def load_model(name: str, device: str | None = None):
    """Load the pipeline once; returns ``(pipe or None, notice or None)``. A model that cannot be
    loaded falls back to the embedded demo, and if that is missing too the app runs without one."""
    notices = []
    for candidate in dict.fromkeys([name, DEMO_MODEL_NAME]):
        try:
            pipe = load_for_inference(candidate, device)
        except (OSError, ValueError) as err:  # missing weights, Hub unreachable, not a pipeline folder
            notices.append(f"Could not load model `{candidate}`: {err}")
            continue
        pipe.set_progress_bar_config(disable=True)
        if candidate == DEMO_MODEL_NAME:
            notices.append(f"Using the embedded demo model `{DEMO_MODEL_NAME}`: trained on synthetic figures only.")
        return pipe, "\n\n".join(notices)
    notices.append("**No model is loaded**: generation is disabled. Start the app with `--model <folder or Hub id>`.")
    return None, "\n\n".join(notices)


def default_detector_factory():
    """A fresh pose detector per user (mediapipe keeps tracking state); None when none is installed."""
    from turbonext.pose.detectors import get_detector

    try:
        return get_detector("auto", video_mode=True)
    except ImportError as err:
        gr.Warning(f"No pose detector: {err}")
        return None


class Handlers:
    """The app's event handlers, plain methods so tests can call them without a browser."""

    def __init__(self, pipe, detector_factory=default_detector_factory, live_kwargs: dict | None = None):
        self.pipe, self.detector_factory, self.live_kwargs = pipe, detector_factory, live_kwargs or {}

    def _need_model(self) -> None:
        if self.pipe is None:
            raise gr.Error("No model is loaded (see the notice at the top); nothing can be generated.")

    def generate(self, reference, video, steps, max_frames, progress=gr.Progress()):
        """Upload tab: -> (MP4 path, pose preview). Inputs stay in place on error."""
        self._need_model()
        if reference is None:
            raise gr.Error("Upload a reference photo of one person first.")
        if not video:
            raise gr.Error("Upload a driving video (a person moving) first.")
        try:
            result = render_clip(self.pipe, reference, video, detector=self.detector_factory(),
                                 num_inference_steps=int(steps), max_frames=int(max_frames), progress=progress)
        except ValueError as err:
            raise gr.Error(str(err)) from err
        for notice in result.notices:
            gr.Warning(notice)
        return str(result.video), result.pose_preview

    def set_reference(self, image, live: LiveSession | None):
        """Webcam tab: a new reference photo -> (live session, what the model sees, status)."""
        self._need_model()
        if image is None:
            if live is not None:
                live.close()
            return None, None, "Upload a reference photo of one person."
        if live is None:
            detector = self.detector_factory()
            if detector is None:
                raise gr.Error("No pose detector is installed: pip install 'turbonext[pose]'.")
        try:
            if live is None:
                live = LiveSession(self.pipe, detector, **self.live_kwargs)
            prepared = live.set_reference(image, require_person=False)
        except ValueError as err:
            raise gr.Error(str(err)) from err
        if prepared.notice:
            gr.Warning(prepared.notice)
        status = "Reference set. Start the webcam and move!"
        if self.live_kwargs.get("compile"):
            status += " (The first stream waits while torch.compile builds the model, a few minutes, once.)"
        return live, prepared.image, status

    @staticmethod
    def stream(frame, live: LiveSession | None):
        """Webcam tab, per frame: -> (newest rendered frame, pose map, stats). Never waits for the model."""
        if live is None or live.runner is None:
            return gr.skip(), gr.skip(), "Upload a reference photo first (left)."
        if frame is None:
            return gr.skip(), gr.skip(), live.stats_markdown()
        try:
            out = live.process(frame)
        except (ValueError, RuntimeError) as err:  # bad frame, or the model worker failed
            raise gr.Error(str(err)) from err
        return (gr.skip() if out is None else out), live.pose_map, live.stats_markdown()


def close_live(live: LiveSession | None) -> None:
    if live is not None:
        live.close()


def build_demo(pipe, notice: str | None = None, detector_factory=default_detector_factory,
               live_kwargs: dict | None = None) -> gr.Blocks:
    """The Blocks (not launched). ``pipe`` may be None: the app then shows ``notice`` and generates nothing."""
    h = Handlers(pipe, detector_factory, live_kwargs)
    generate = spaces.GPU(duration=120)(h.generate) if spaces is not None else h.generate
    with gr.Blocks(title="turbonext") as demo:
        gr.Markdown(INTRO)
        gr.Markdown(notice or "", visible=bool(notice), elem_id="model-notice")
        with gr.Tab("Upload"):
            with gr.Row():
                with gr.Column():
                    ref = gr.Image(label="Reference photo (one person)", type="numpy", sources=["upload", "clipboard"])
                    video = gr.Video(label="Driving video", sources=["upload"])
                    with gr.Row():
                        steps = gr.Slider(1, 8, value=4, step=1, label="Steps")
                        max_frames = gr.Slider(8, 240, value=48, step=8, label="Max frames")
                    go = gr.Button("Generate", variant="primary", interactive=pipe is not None)
                with gr.Column():
                    out_video = gr.Video(label="reference | pose | result", autoplay=True)
                    pose_preview = gr.Image(label="Poses found in the video", interactive=False)
            go.click(generate, [ref, video, steps, max_frames], [out_video, pose_preview],
                     api_name="generate", concurrency_limit=1)
        with gr.Tab("Webcam"):
            live = gr.State(None, delete_callback=close_live)
            with gr.Row():
                with gr.Column(scale=1):
                    live_ref = gr.Image(label="Reference photo (one person)", type="numpy", sources=["upload", "clipboard"])
                    model_view = gr.Image(label="What the model sees", interactive=False, height=160)
                with gr.Column(scale=1):
                    cam = gr.Image(label="Webcam", sources=["webcam"], streaming=True, type="numpy")
                    pose_view = gr.Image(label="Pose", interactive=False, height=160)
                with gr.Column(scale=1):
                    result = gr.Image(label="Result", interactive=False)
                    stats = gr.Markdown("Upload a reference photo, then start the webcam.")
            live_ref.change(h.set_reference, [live_ref, live], [live, model_view, stats], api_name="set_reference")
            cam.stream(h.stream, [cam, live], [result, pose_view, stats], stream_every=STREAM_EVERY,
                       time_limit=STREAM_TIME_LIMIT, concurrency_limit=STREAM_CONCURRENCY, api_name=False,
                       show_progress="hidden")
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="turbonext Gradio app")
    p.add_argument("--model", default=os.environ.get("TURBONEXT_MODEL", DEMO_MODEL_NAME),
                   help="a pipeline folder, a Hub repo id, or the embedded demo (env TURBONEXT_MODEL)")
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda if available)")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0" if os.environ.get("SPACE_ID") else "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    p.add_argument("--compile", default=os.environ.get("TURBONEXT_COMPILE", "none"),
                   choices=["none"] + [mode for mode in COMPILE_MODES if mode],
                   help="torch.compile the webcam stream's UNet (GPU; reduce-overhead = CUDA graphs). The first "
                        "webcam stream then waits for the compile, minutes; later ones and new photos reuse it "
                        "(env TURBONEXT_COMPILE)")
    p.add_argument("--window", type=int, default=os.environ.get("TURBONEXT_WINDOW"),  # argparse converts a string default
                   help=f"webcam stream: latent window in frames (default 16 on a GPU, {CPU_STREAM_WINDOW} on a CPU: "
                        "about 1.2 s median delay there with the demo model; env TURBONEXT_WINDOW)")
    p.add_argument("--frames-per-level", type=int, default=None,
                   help="webcam stream: frames that enter and leave the window together (default: half the window "
                        "in the uniform layout, window/steps in the staggered one; 1 = lowest latency)")
    p.add_argument("--schedule", default=os.environ.get("TURBONEXT_SCHEDULE"), choices=[None, "uniform", "staggered"],
                   help="webcam stream: window layout (default: the model's config.stream_schedule; staggered only "
                        "for models trained on it; env TURBONEXT_SCHEDULE)")
    return p.parse_args(argv)


def live_settings(args: argparse.Namespace, device: str | None = None) -> dict:
    """The webcam stream's settings (``LiveSession`` keyword arguments) from the command line and the
    type of device the model runs on (``"cpu"`` gets :data:`CPU_STREAM_WINDOW`)."""
    settings = {"compile": None if args.compile == "none" else args.compile}
    window = args.window or (CPU_STREAM_WINDOW if device == "cpu" else None)
    if window is not None:
        settings["window"] = window
    if args.frames_per_level is not None:
        settings["frames_per_level"] = args.frames_per_level
    if args.schedule:
        settings["schedule"] = args.schedule
    return settings


if __name__ == "__main__":
    args = parse_args()
    pipe, notice = load_model(args.model, args.device)
    device = pipe.device.type if pipe is not None else "cpu"
    demo = build_demo(pipe, notice, live_kwargs=live_settings(args, device))
    demo.queue(max_size=32).launch(server_name=args.host, server_port=args.port)
