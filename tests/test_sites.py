import pytest

from workbench import Site
from workbench.sites import resid


def test_forms_round_trip(tiny):
    assert Site.parse("resid_post.1").hook_name == "blocks.1.hook_resid_post"
    assert Site.parse("blocks.1.hook_resid_post") == Site(1, "resid_post")
    assert Site.parse("blocks.0.attn.hook_z") == Site(0, "attn.z")
    assert Site(0, "attn.z").hook_name == "blocks.0.attn.hook_z"
    assert Site.parse("hook_embed") == Site(None, "embed") == Site.parse("embed")
    assert resid(1).short == "resid_post.1"
    # every hook of the model parses and maps back to itself (hooks the config never fires are refused)
    for name in tiny.hook_dict:
        if not name.endswith(("hook_mlp_in", "hook_attn_in", "hook_result", "_input")):
            assert Site.parse(name, tiny).hook_name == name


def test_unknown_site_lists_close_matches(tiny):
    with pytest.raises(KeyError, match=r"close matches: .*blocks\.1\.hook_resid_post"):
        Site.parse("resid_posst.1", tiny)
    with pytest.raises(KeyError, match=r"layers 0\.\.1"):
        Site.parse("resid_post.7", tiny)


@pytest.mark.parametrize("bad", [(-1, "resid_post"), (1, ""), (1, "hook_resid_post"), (True, "resid_post")])
def test_bad_sites(bad):
    with pytest.raises(ValueError):
        Site(*bad)
