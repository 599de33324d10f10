"""Every hook of every architecture family is a site whose name round-trips, and streams that a
config leaves out are refused with an error naming the config field."""

import pytest
from architectures import family_model

from workbench.sites import Site


def test_every_hook_round_trips(arch_model):
    """Hook points the config never fires (hook_mlp_in without use_hook_mlp_in, ...) are refused by
    name; every other hook parses, with and without the model, back to itself."""
    for name in arch_model.hook_dict:
        site = Site.parse(name)
        assert site.hook_name == name and Site.parse(site.short).hook_name == name
        try:
            Site.parse(name, arch_model)
        except KeyError as e:
            assert "is not computed by this model: cfg." in str(e)
            assert site.stream in ("mlp_in", "attn_in", "attn.result", "q_input", "k_input", "v_input")


def test_parallel_block_has_no_resid_mid():
    with pytest.raises(KeyError, match=r"cfg\.parallel_attn_mlp=True"):
        Site.parse("resid_mid.0", family_model("neox"))


@pytest.mark.parametrize(("site", "field"), [("mlp_in.0", "use_hook_mlp_in"), ("attn.result.1", "use_attn_result")])
def test_optional_hooks_name_their_config_field(site, field):
    with pytest.raises(KeyError, match=rf"cfg\.{field}=False"):
        Site.parse(site, family_model("llama"))
