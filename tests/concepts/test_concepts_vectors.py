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
        fit_logistic(torch.randn(4, 3), [1, 0, 1, 0], C=0)


def test_mean_difference_and_centring():
    pos, neg, _ = _blobs(n=50)
    assert torch.allclose(mean_difference(pos, neg), pos.mean(0) - neg.mean(0), atol=1e-4)
    everything = torch.cat([pos, neg, torch.randn(30, pos.shape[1])])
    assert torch.allclose(mean_centring(pos, everything), pos.mean(0) - everything.mean(0), atol=1e-4)
    with pytest.raises(ValueError, match="width"):
        mean_difference(pos, neg[:, :3])


def test_pca_of_differences_matches_sklearn_and_aligns_sign():
    from sklearn.decomposition import PCA

    pos, neg, direction = _blobs(n=80)
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
    with pytest.raises(ValueError, match="unknown method"):
        fit_vector("magic", site, pos, neg)
    with pytest.raises(FileNotFoundError, match="missing"):
        ConceptVector.load(tmp_path / "nothing")


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
