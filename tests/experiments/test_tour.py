"""The quick tour runs end to end on the embedded model and its gallery renders in Chromium."""

import pytest

from workbench.experiments.export import chromium_path
from workbench.experiments.gallery import rendered_in_browser
from workbench.experiments.tour import STEP_NAMES, TourConfig, run_tour


@pytest.mark.embedded
@pytest.mark.skipif(chromium_path() is None, reason="needs Debian's chromium (make test installs it)")
def test_quick_tour_writes_every_figure_and_a_rendering_gallery(embedded, tmp_path):
    results = run_tour(TourConfig(quick=True, figures_dir=tmp_path), model=embedded)
    failed = {r.name: r.error for r in results if r.error}
    assert not failed, failed
    assert [r.name for r in results] == list(STEP_NAMES)
    names = [e.name for r in results for e in r.entries]
    for required in (
        "logit_lens_heatmap",
        "tuned_lens_kl",
        "concepts_probe_accuracy_by_layer",
        "steering_bakeoff_frontier",
        "gcav_probability_target",
        "sae_input_vs_output_scores",
        "patching_act_resid_pre",
        "patching_faithfulness_resid_pre",
    ):
        assert required in names
    for n in names:
        for ext in ("html", "png", "svg"):
            assert (tmp_path / f"{n}.{ext}").stat().st_size > 0
    status = rendered_in_browser(tmp_path / "index.html")
    assert status and set(status.values()) == {"yes"} and set(status) == set(names)


def test_tour_config_rejects_unknown_steps():
    with pytest.raises(ValueError, match="unknown tour steps"):
        TourConfig(steps=("lens", "nope"))


def test_tour_steps_declare_what_they_need():
    with pytest.raises(ValueError, match=r"'gcav' needs step\(s\) probes first; add --step probes"):
        TourConfig(steps=("gcav",))
    assert TourConfig(steps=("gcav", "probes")).step_names == ("probes", "gcav")
    assert TourConfig(steps=("lens",)).step_names == ("lens",)
    assert TourConfig().step_names == STEP_NAMES
