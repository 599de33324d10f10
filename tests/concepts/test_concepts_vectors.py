import inspect

import pytest
import torch

from workbench.concepts import (
    ConceptVector,
    best_layer,
    fit_logistic,
    fit_vector,
    layer_sweep,
    mean_centring,
    mean_difference,
    pca_of_differences,
)
from workbench.sites import Site


def _blobs(n=120, d=24, shift=1.5, seed=0, scale=30.0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(d, generator=g) * scale  # a large common offset, like residual activations
    direction = torch.randn(d, generator=g)
    direction /= direction.norm()
    pos = mu + torch.randn(n, d, generator=g) * 2 + shift * direction
    neg = mu + torch.randn(n, d, generator=g) * 2 - shift * direction
    return pos, neg, direction


@pytest.mark.parametrize("C", [0.05, 1.0, 20.0])
def test_logistic_probe_matches_sklearn(C):
    from sklearn.linear_model import LogisticRegression

    pos, neg, _ = _blobs()
    x = torch.cat([pos, neg])
    y = [1] * len(pos) + [0] * len(neg)
    ours = fit_logistic(x, y, C=C)
    ref = LogisticRegression(C=C, tol=1e-10, max_iter=10000).fit(x.double().numpy(), y)
    w_ref = torch.from_numpy(ref.coef_[0])
    cos = float(ours.w @ w_ref / (ours.w.norm() * w_ref.norm()))
    assert cos > 0.9999
    assert ours.w.norm() == pytest.approx(float(w_ref.norm()), rel=2e-3)
    assert ours.b == pytest.approx(float(ref.intercept_[0]), rel=2e-3, abs=2e-3)
    p_ref = torch.from_numpy(ref.predict_proba(x.double().numpy())[:, 1])
    assert torch.allclose(ours.predict_proba(x), p_ref, atol=1e-3)


def test_logistic_rejects_bad_labels():
    with pytest.raises(ValueError, match="labels 0 and 1"):
        fit_logistic(torch.randn(4, 3), [1, 1, 1, 1])
    with pytest.raises(ValueError, match="C must be"):
        fit_logistic(torch.randn(4, 3), [1, 0, 1, 0], C=0.0)


def test_mean_difference_and_centring():
    pos, neg, _ = _blobs(n=50)
    assert torch.allclose(mean_difference(pos, neg), pos.mean(0) - neg.mean(0), atol=1e-4)
    everything = torch.cat([pos, neg, torch.randn(30, pos.shape[1])])
    assert torch.allclose(mean_centring(pos, everything), pos.mean(0) - everything.mean(0), atol=1e-4)
    with pytest.raises(ValueError, match="width"):
        inspect.unwrap(mean_difference)(pos, neg[:, :3])  # our check, below the signature check


def test_pca_of_differences_matches_sklearn_and_aligns_sign():
    from sklearn.decomposition import PCA

    pos, neg, _ = _blobs(n=80)
    v, ratio = pca_of_differences(pos, neg)
    ref = PCA(n_components=1).fit((pos - neg).double().numpy())
    ref_v = torch.from_numpy(ref.components_[0]).float()
    assert abs(float(v @ ref_v)) == pytest.approx(1.0, abs=1e-4)
    assert ratio == pytest.approx(float(ref.explained_variance_ratio_[0]), rel=1e-4)
    assert float(v @ mean_difference(pos, neg)) > 0
    # flipping the pairs flips the direction
    v2, _ = pca_of_differences(neg, pos)
    assert torch.allclose(v2, -v, atol=1e-5)


def test_fit_vector_every_method_and_save_load(tmp_path):
    pos, neg, _ = _blobs(n=40, d=16)
    site = Site(3, "resid_post")
    pool = torch.cat([pos, neg, torch.randn(40, 16) * 5])
    for method in ("logistic", "mean_diff", "mean_centring", "pca_diff", "ablation", "ace"):
        vec = fit_vector(method, site, pos, neg, all_training=pool, concept="blobs", extra_params={"layer": 3})
        assert vec.method == method and vec.site == site and vec.params["layer"] == 3
        path = vec.save(tmp_path / method)
        back = ConceptVector.load(path)
        assert back.site == site and back.method == method and back.params == vec.params and back.bias == vec.bias
        assert torch.equal(back.direction, vec.direction)
        assert set(back.extras) == set(vec.extras)
        for k in vec.extras:
            assert torch.equal(back.extras[k], vec.extras[k])
    lg = fit_vector("logistic", site, pos, neg)
    assert lg.bias is not None and lg.unit.norm() == pytest.approx(1.0)
    assert lg.params["train_accuracy"] > 0.9
    ace = fit_vector("ace", site, pos, neg, ace_reference="negative")
    assert torch.allclose(ace.extras["mu0"], neg.mean(0), atol=1e-4)
    with pytest.raises(ValueError, match="all_training"):
        fit_vector("mean_centring", site, pos, neg)
    with pytest.raises(ValueError, match="unknown concept method 'magic'; known methods: logistic, mean_diff"):
        fit_vector("magic", site, pos, neg)
    with pytest.raises(ValueError, match="reference"):
        fit_vector("ace", site, pos, neg, ace_reference="median")
    with pytest.raises(FileNotFoundError, match="missing"):
        ConceptVector.load(tmp_path / "nothing")


def _write_format_1(stem, vec):
    """A vector file as the code before workbench.artifacts wrote it: safetensors + JSON with "format": 1."""
    import json

    from safetensors.torch import save_file

    tensors = {"direction": vec.direction.contiguous()}
    tensors.update({f"extra.{k}": v.contiguous() for k, v in vec.extras.items()})
    save_file(tensors, f"{stem}.safetensors")
    meta = {
        "site": vec.site.short,
        "hook_name": vec.site.hook_name,
        "method": vec.method,
        "params": vec.params,
        "bias": vec.bias,
        "concept": vec.concept,
        "d_model": vec.d_model,
        "format": 1,
    }
    with open(f"{stem}.json", "w") as f:
        json.dump(meta, f)


def _same(a, b):
    assert (a.site, a.method, a.params, a.bias, a.concept) == (b.site, b.method, b.params, b.bias, b.concept)
    assert torch.equal(a.direction, b.direction) and set(a.extras) == set(b.extras)
    assert all(torch.equal(a.extras[k], b.extras[k]) for k in a.extras)


def test_save_goes_through_artifacts_and_old_files_still_load(tmp_path):
    import json

    pos, neg, _ = _blobs(n=20, d=8)
    vec = fit_vector("ace", Site(12, "resid_post"), pos, neg, concept="blobs")
    stem = vec.save(tmp_path / "ace_resid_post.12")  # a dot inside the stem is kept
    meta = json.loads((tmp_path / "ace_resid_post.12.json").read_text())
    assert meta["kind"] == "concept_vector" and meta["schema_version"] == 2
    assert (tmp_path / "ace_resid_post.12.safetensors").is_file()
    _same(ConceptVector.load(stem), vec)
    _same(ConceptVector.load(tmp_path / "ace_resid_post.12.safetensors"), vec)
    _write_format_1(tmp_path / "old", vec)
    _same(ConceptVector.load(tmp_path / "old"), vec)


def _edit_meta(path, **changes):
    import json

    meta = json.loads(path.read_text())
    meta.update(changes)
    path.write_text(json.dumps(meta))


def test_load_validates_and_names_the_file_and_field(tmp_path, tiny):
    from safetensors.torch import save_file

    from workbench.artifacts import ArtifactError

    pos, neg, _ = _blobs(n=20, d=tiny.cfg.d_model)
    vec = fit_vector("mean_diff", Site(0, "resid_post"), pos, neg)

    def saved(name, **changes):
        stem = vec.save(tmp_path / name)
        _edit_meta(tmp_path / f"{name}.json", **changes)
        return stem

    with pytest.raises(ArtifactError, match=r"hook\.json: field 'hook_name'.*'blocks\.0\.hook_resid_post'"):
        ConceptVector.load(saved("hook", hook_name="blocks.3.hook_resid_post"))
    with pytest.raises(ArtifactError, match=r"width\.safetensors: tensor 'direction' has shape .*'d_model' is 7"):
        ConceptVector.load(saved("width", d_model=7))
    with pytest.raises(ArtifactError, match=r"method\.json: field 'method'.*known methods"):
        ConceptVector.load(saved("method", method="magic"))
    with pytest.raises(ArtifactError, match=r"kind\.json: field 'kind'"):
        ConceptVector.load(saved("kind", kind="tuned_lens"))
    with pytest.raises(ArtifactError, match=r"version\.json: field 'schema_version'"):
        ConceptVector.load(saved("version", schema_version=99))
    with pytest.raises(ArtifactError, match=r"site\.json: field 'site'"):
        ConceptVector.load(saved("site", site=42))
    stem = saved("nan")
    save_file({"direction": torch.full((tiny.cfg.d_model,), float("nan"))}, f"{stem}.safetensors")
    with pytest.raises(ArtifactError, match=r"nan\.safetensors: tensor 'direction' holds NaN"):
        ConceptVector.load(stem)
    _write_format_1(tmp_path / "old_nan", vec)
    save_file({"direction": torch.full((tiny.cfg.d_model,), float("inf"))}, str(tmp_path / "old_nan.safetensors"))
    with pytest.raises(ArtifactError, match=r"old_nan\.safetensors: tensor 'direction' holds NaN or Inf"):
        ConceptVector.load(tmp_path / "old_nan")
    # against a model: the site must exist and the widths match
    assert ConceptVector.load(saved("fine"), model=tiny).d_model == tiny.cfg.d_model
    deep = fit_vector("mean_diff", Site(40, "resid_post"), pos, neg)
    with pytest.raises(ArtifactError, match=r"deep\.json: field 'site'"):
        ConceptVector.load(deep.save(tmp_path / "deep"), model=tiny)
    narrow = fit_vector("mean_diff", Site(0, "resid_post"), pos[:, :5], neg[:, :5])
    with pytest.raises(ArtifactError, match=r"narrow\.json: field 'd_model' is 5"):
        ConceptVector.load(narrow.save(tmp_path / "narrow"), model=tiny)


def test_concept_vector_validates_its_fields():
    site = Site(0, "resid_post")
    with pytest.raises(ValueError, match="unknown concept method"):
        ConceptVector(site, torch.ones(4), "magic")
    with pytest.raises(ValueError, match="non-zero"):
        ConceptVector(site, torch.zeros(4), "mean_diff")
    with pytest.raises(ValueError, match=r"extras\['mu0'\]"):
        ConceptVector(site, torch.ones(4), "ace", extras={"mu0": torch.ones(3)})
    with pytest.raises(ValueError, match="bias"):
        ConceptVector(site, torch.ones(4), "logistic", bias=float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        fit_vector("mean_diff", site, torch.full((3, 4), float("nan")), torch.ones(3, 4))


def test_layer_sweep_picks_the_separable_layer():
    train, test = {}, {}
    for layer, shift in ((0, 0.0), (1, 0.6), (2, 6.0)):
        p, n, _ = _blobs(n=90, shift=shift, seed=layer)
        train[f"resid_post.{layer}"] = (p[:60], n[:60])
        test[f"resid_post.{layer}"] = (p[60:], n[60:])
    sweep = layer_sweep(train, test, concept="blobs")
    assert list(sweep["layer"]) == [0, 1, 2]
    assert best_layer(sweep) == "resid_post.2"
    acc = dict(zip(sweep["layer"], sweep["test_accuracy"]))
    assert acc[2] > 0.95 and acc[0] < 0.75
