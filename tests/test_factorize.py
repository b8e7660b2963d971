import torch

from adaptwin.compress import factorize as fz


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_full_rank_twin_is_exact_with_bias_and_whitening():
    wq, bq, wk = _rand(32, 32), _rand(32, seed=1), _rand(32, 32, seed=2)
    a, b = fz.heads_qk(wq, bq, wk, None, num_heads=4)  # [4, 33, 8], [4, 32, 8]
    x = _rand(200, 33, seed=3)
    x[:, -1] = 1
    white = fz.whitener(x.T @ x / 200)
    fact = fz.twin_factorize(a, b, white, None)
    a2, b2 = fact.factors(8, dtype=torch.float64)
    assert torch.allclose(a2 @ b2.transpose(-1, -2), a @ b.transpose(-1, -2), atol=1e-9)
    assert fact.rel_error(8) < 1e-12


def test_query_bias_per_key_term_is_kept():
    # score = (x Wq^T + bq) (y Wk^T)^T: the bias row must survive the factorization
    wq, bq, wk = _rand(16, 16), _rand(16, seed=5) * 10, _rand(16, 16, seed=6)
    a, b = fz.heads_qk(wq, bq, wk, None, num_heads=2)
    a2, b2 = fz.twin_factorize(a, b).factors(8, dtype=torch.float64)
    x, y = _rand(5, 16, seed=7), _rand(6, 16, seed=8)
    for h in range(2):
        q = x @ wq[h * 8 : (h + 1) * 8].T + bq[h * 8 : (h + 1) * 8]
        k = y @ wk[h * 8 : (h + 1) * 8].T
        q2 = torch.cat([x, torch.ones(5, 1, dtype=x.dtype)], 1) @ a2[h]
        assert torch.allclose(q @ k.T, q2 @ (y @ b2[h]).T, atol=1e-9)


def test_error_falls_monotonically_with_rank():
    a, b = _rand(4, 33, 16), _rand(4, 32, 16, seed=1)
    fact = fz.twin_factorize(a, b)
    errors = [fact.rel_error(r) for r in range(1, 17)]
    assert all(e1 > e2 for e1, e2 in zip(errors, errors[1:]))
    truth = a @ b.transpose(-1, -2)
    for r in (2, 8, 12):
        a2, b2 = fact.factors(r, dtype=torch.float64)
        measured = ((a2 @ b2.transpose(-1, -2) - truth).norm() / truth.norm()).item()
        assert abs(measured - fact.rel_error(r)) < 1e-9


def test_twin_beats_independent_svd_at_equal_parameters():
    a, b = _rand(4, 64, 16), _rand(4, 64, 16, seed=1)
    truth = a @ b.transpose(-1, -2)
    fact = fz.twin_factorize(a, b)
    for r in (4, 8, 12):
        ja, jb = fact.factors(r, dtype=torch.float64)
        ia, ib = fz.independent_factors(a, b, r)
        assert ja.shape == ia.shape and jb.shape == ib.shape  # same parameter count
        joint = (ja @ jb.transpose(-1, -2) - truth).norm()
        indep = (ia.double() @ ib.double().transpose(-1, -2) - truth).norm()
        assert joint < indep


def test_data_aware_beats_data_free_on_the_data():
    # inputs living mostly in a few directions: whitening should spend rank there
    basis = _rand(64, 6, seed=9)
    x = _rand(500, 6, seed=10) @ basis.T + 0.01 * _rand(500, 64, seed=11)
    a, b = _rand(1, 64, 16, seed=12), _rand(1, 64, 16, seed=13)
    white = fz.whitener(x.T @ x / 500)
    truth = x @ a[0] @ b[0].T
    aware, free = fz.twin_factorize(a, b, white, None), fz.twin_factorize(a, b)
    e = []
    for fact in (aware, free):
        a2, b2 = fact.factors(6, dtype=torch.float64)  # rank = the data's dimension
        e.append(((x @ a2[0] @ b2[0].T - truth).norm() / truth.norm()).item())
    assert e[0] < 0.05 < e[1]


def test_whitener_survives_singular_second_moment():
    x = _rand(10, 3) @ _rand(3, 32, seed=1)  # rank 3 in 32 dims
    white = fz.whitener(x.T @ x / 10)
    assert torch.isfinite(white).all()
    assert torch.allclose(white @ white.T, x.T @ x / 10, atol=1e-2 * float((x.T @ x / 10).diagonal().mean()))


def test_value_bias_fold_is_exact():
    wv, bv, wo, bo = _rand(16, 16), _rand(16, seed=1), _rand(16, 16, seed=2), _rand(16, seed=3)
    y = _rand(7, 16, seed=4)
    attn = torch.softmax(_rand(2, 5, 7, seed=5), -1)  # rows sum to 1
    heads = []
    for h in range(2):
        v = y @ wv[h * 8 : (h + 1) * 8].T + bv[h * 8 : (h + 1) * 8]
        heads.append(attn[h] @ v)
    dense = torch.cat(heads, -1) @ wo.T + bo
    a, b = fz.heads_vo(wv, wo, 2)
    folded = sum(attn[h] @ y @ a[h] @ b[h].T for h in range(2)) + fz.fold_value_bias(bv, wo, bo)
    assert torch.allclose(dense, folded, atol=1e-9)


def test_linear_factorize_full_rank_exact():
    w = _rand(24, 16)
    fact = fz.linear_factorize(w)
    a, b = fact.factors(16, dtype=torch.float64)
    assert torch.allclose(a[0] @ b[0].T, w.T, atol=1e-9)
