"""Publishing on the Hub: the model card and the upload (a fake HfApi records what would go up; no network)."""

import json
import shutil
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from huggingface_hub.errors import LocalTokenNotFoundError

from turbonext.commands.main import main as turbonext_main
from turbonext.loaders import publish as hub_publish


DEMO_EVAL = Path(__file__).resolve().parents[1] / "turbonext" / "demo" / "eval" / "test_identity.json"


@pytest.fixture(scope="module")
def pipeline_folder(tiny_pipe_factory, tmp_path_factory):
    folder = tmp_path_factory.mktemp("exported") / "my-turbonext"
    tiny_pipe_factory().save_pretrained(folder)
    return folder


def test_push_uploads_loadable_files_only_with_a_card(pipeline_folder, fake_hub, tmp_path, capsys):
    folder = tmp_path / "pipe"
    shutil.copytree(pipeline_folder, folder)
    (folder / "random_states_0.pkl").write_bytes(b"not for the Hub")  # pickles never go up
    assert turbonext_main(["push", str(folder), "you/my-turbonext", "--private"]) == 0
    assert fake_hub.calls[0] == ("create_repo", "you/my-turbonext", True)
    _, repo, files = fake_hub.calls[1]
    assert repo == "you/my-turbonext" and "README.md" in files and "model_index.json" in files
    assert "unet/diffusion_pytorch_model.safetensors" in files and not any(f.endswith(".pkl") for f in files)
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "turbonext" and card.data.pipeline_tag == "image-to-video"
    assert 'TurboNextPipeline.from_pretrained("you/my-turbonext")' in card.text
    assert "| pose_guider | turbonext.models.pose_guider.PoseGuider |" in card.text
    assert "from_pretrained('you/my-turbonext')" in capsys.readouterr().out
    # a dry run lists the same files and talks to nobody
    fake_hub.calls.clear()
    assert turbonext_main(["push", str(folder), "you/my-turbonext", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert fake_hub.calls == [] and "nothing uploaded" in out and f"{len(files)} files" in out
    assert hub_publish.upload_files(folder) == files


def test_push_adds_evaluation_and_keeps_a_hand_edited_card(pipeline_folder, fake_hub, tmp_path, capsys):
    folder = tmp_path / "pipe"
    shutil.copytree(pipeline_folder, folder)
    assert turbonext_main(["push", str(folder), "you/m", "--eval-json", str(DEMO_EVAL), "--license", "openrail"]) == 0
    card = ModelCard.load(folder / "README.md")
    psnr = json.loads(DEMO_EVAL.read_text())["metrics"]["psnr"]
    assert "## Evaluation" in card.text and f"| synth256_v2 | test_identity | 12 | 4 | False | {psnr:.2f} |" in card.text
    assert card.data.license == "openrail"
    # pushed again without new results: the evaluation and licence stay
    assert turbonext_main(["push", str(folder), "you/m"]) == 0
    again = ModelCard.load(folder / "README.md")
    assert f"{psnr:.2f}" in again.text and again.data.license == "openrail"
    # edited by hand (the generated-mark line removed): uploaded exactly as the user left it
    edited = card.content.replace(hub_publish.GENERATED_MARK, "") + "\nMy own notes.\n"
    (folder / "README.md").write_text(edited)
    assert turbonext_main(["push", str(folder), "you/m", "--license", "mit"]) == 0
    assert (folder / "README.md").read_text() == edited
    assert "edited by hand" in capsys.readouterr().err


def test_push_errors_are_clear_and_keep_the_folder(pipeline_folder, fake_hub, tmp_path, capsys):
    with pytest.raises(SystemExit):  # not a pipeline folder
        turbonext_main(["push", str(tmp_path), "you/m"])
    assert "no model_index.json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        turbonext_main(["push", str(pipeline_folder), "not-a-repo-id"])
    assert "owner/name" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text(json.dumps({"split": "x"}))
    with pytest.raises(SystemExit):
        turbonext_main(["push", str(pipeline_folder), "you/m", "--eval-json", str(tmp_path / "bad.json")])
    assert "turbonext eval" in capsys.readouterr().err
    assert not (pipeline_folder / "README.md").exists()  # refused before anything was written
    # the upload fails (not logged in): a clear message with the retry command, the export untouched
    folder = tmp_path / "pipe"
    shutil.copytree(pipeline_folder, folder)
    fake_hub.fail_with = LocalTokenNotFoundError("Token is required (`token=True`), but no token found.")
    assert turbonext_main(["push", str(folder), "you/m"]) == 1
    err = capsys.readouterr().err
    assert "no token found" in err and f"turbonext push {folder} you/m" in err
    for original in pipeline_folder.rglob("*"):
        if original.is_file():
            assert (folder / original.relative_to(pipeline_folder)).read_bytes() == original.read_bytes()


def test_pipeline_push_to_hub_uploads_with_a_turbonext_card(tiny_pipe_factory, fake_hub, tmp_path):
    pipe = tiny_pipe_factory()
    url = pipe.push_to_hub("you/from-python", private=True)
    assert url.startswith("https://huggingface.co/you/from-python") and fake_hub.calls[0] == ("create_repo", "you/from-python", True)
    files = fake_hub.calls[1][2]
    assert "README.md" in files and "unet/diffusion_pytorch_model.safetensors" in files
    with pytest.raises(ValueError, match="create_pr"):
        pipe.push_to_hub("you/from-python", create_pr=True)
    # the diffusers spelling, save_pretrained(push_to_hub=True), takes the same path
    fake_hub.calls.clear()
    pipe.save_pretrained(tmp_path / "saved", push_to_hub=True, repo_id="you/saved")
    assert fake_hub.calls[0] == ("create_repo", "you/saved", None)  # not asked private: the account's default
    assert [c[:2] for c in fake_hub.calls] == [("create_repo", "you/saved"), ("upload_folder", "you/saved")]
    assert ModelCard.load(tmp_path / "saved" / "README.md").data.library_name == "turbonext"
    with pytest.raises(ValueError, match="repo_id"):
        pipe.save_pretrained(tmp_path / "other", push_to_hub=True)
    pipe.save_pretrained(tmp_path / "plain")  # a plain save writes no card and uploads nothing
    assert not (tmp_path / "plain" / "README.md").exists() and len(fake_hub.calls) == 2

