"""The OpenAI-compatible backend's image path against a real `transformers serve` running a tiny random LLaVA."""

from conftest import served_model_id

from cirkit.engine import Engine, Store
from cirkit.models.config import BackendConfig
from cirkit.models.prompts import PromptConfig
from cirkit.models.requests import Decoding
from cirkit.models.roles import EngineRoles, RoleConfig


def test_image_path_against_a_real_server(vlm_server, tmp_path):
    """Images as base64 data URLs through a real `transformers serve` running a tiny random LLaVA."""
    from conftest import make_images

    from cirkit.data.model import ImageRef

    paths = [tmp_path / f"im{i}.png" for i in range(2)]
    make_images(paths, size=(40, 40))
    images = tuple(ImageRef(f"im{i}", str(p), content=f"{i:064x}") for i, p in enumerate(paths))
    backend = BackendConfig("openai", vlm_server["model"], base_url=vlm_server["base_url"])
    engine = Engine(Store(str(tmp_path / "store")), progress=False)
    roles = EngineRoles(engine)
    captions = roles.caption(RoleConfig(backend, PromptConfig("generic/captioner"), Decoding(max_tokens=6)), images).value
    assert captions.models == (served_model_id(vlm_server),) * 2
    verdicts = roles.verify(RoleConfig(backend, PromptConfig("generic/verifier"), Decoding(max_tokens=3)), images,
                            ("is it red?", "is it blue?")).value
    assert len(verdicts.values) == 2  # a random model rarely says yes or no: those count as fallbacks
    assert "POST /v1/chat/completions" in vlm_server["log"].read_text()
