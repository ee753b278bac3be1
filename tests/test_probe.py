#!/usr/bin/python3
"""Reference test of the learned evaluations (SPEC §2.5, §2.8, §2.10) against
scikit-learn: `stsae check-probe IN.h5 OUT.h5` on random labelled problems
(more samples than features, more features than samples, features between a
CV fold's training size and the split's, a label absent from the training
split, constant columns, two classes, badly scaled raw columns).

  /usr/bin/python3 tests/test_probe.py --stsae build/stsae [--workdir DIR] [--cases a,b]

Class means are Gaussian with norm about `signal` (3) against unit noise, so
that accuracies sit between chance and 1. Per case, on the same standardized data (StandardScaler on float64 copies):
  probe  vs LogisticRegression(C=1, solver="lbfgs", multi_class="multinomial",
         tol=1e-10, max_iter=10000): test accuracy and the objective
         sum CE + ||W||^2/2 (sklearn 1.2's scaling) within 1e-3, the modelled
         classes equal, W within 1e-3 * max(1, max|W|) and the mean-free
         intercepts likewise; stsae runs with ftol = 0 (to the gradient stop)
         and, independently of sklearn, the objective's gradient at its
         (W, b), recomputed here, has norm <= 1e-5 (so it is the minimizer);
         the default_stops cases keep the relative-reduction stop instead;
  ablation: the feature ranking is the descending weight-norm order (ties by
         index) and its top 10 equals sklearn's; accuracy with the top n
         columns zeroed (raw 0, then the training statistics) equals sklearn's
         prediction on the same ablated data within 1e-3;
  ridge  vs GridSearchCV(Ridge(), alphas 1e-2..1e4, cv=KFold(5),
         scoring="neg_mean_squared_error"): the same alpha, each alpha's mean
         CV MSE within 1e-6 relative, W and b within 1e-6 relative, R@1 and R@5
         equal (labels ranked by cosine, ties to the lower label).
One line per case, then `N passed, M failed`; exit status 1 on any failure.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.preprocessing import StandardScaler

ALPHAS = [1e-2, 1e-1, 1e0, 1e1, 1e2, 1e3, 1e4]
ABLATE = [1, 3, 10]
TOL_PROBE = 1e-3
TOL_GRAD = 1e-5
TOL_RIDGE = 1e-6

# name: n_train, n_test, p, n_class, e (text dim), options
CASES = {
    "tall": dict(n=240, m=120, p=24, k=5, e=16),
    "wide": dict(n=80, m=60, p=200, k=4, e=12),
    "between": dict(n=100, m=50, p=90, k=6, e=10),  # fold train 80 < p < 100
    "missing_class": dict(n=150, m=90, p=40, k=7, e=8, absent=(2, 5)),
    "constant": dict(n=120, m=60, p=30, k=4, e=8, constant=(0, 7, 29)),
    "wide_constant": dict(n=50, m=40, p=120, k=3, e=8, constant=(3, 64), absent=(1,), k_total=4),
    "two_class": dict(n=100, m=80, p=20, k=2, e=6),
    "scaled": dict(n=160, m=80, p=32, k=5, e=16, scaled=True),
    "one_class": dict(n=30, m=20, p=10, k=1, e=4),
    # SPEC's stops as sklearn's (relative reduction too): no gradient check
    "default_stops": dict(n=300, m=150, p=60, k=8, e=16, ftol=None),
    "default_stops_wide": dict(n=120, m=80, p=400, k=6, e=16, ftol=None),
}


def draw(name, spec, seed):
    rng = np.random.default_rng(seed)
    n, m, p, k = spec["n"], spec["m"], spec["p"], spec["k"]
    n_class = spec.get("k_total", k + len(spec.get("absent", ())))
    present = [c for c in range(n_class) if c not in spec.get("absent", ())][:k]
    centers = rng.normal(size=(n_class, p)) * spec.get("signal", 3.0) / np.sqrt(p)
    ytr = rng.choice(present, size=n).astype(np.int32)
    yte = rng.integers(0, n_class, size=m).astype(np.int32)  # absent labels too
    Xtr = centers[ytr] + rng.normal(size=(n, p))
    Xte = centers[yte] + rng.normal(size=(m, p))
    if spec.get("scaled"):
        scale = 10.0 ** rng.uniform(-3, 3, size=p)
        shift = rng.normal(size=p) * 100
        Xtr, Xte = Xtr * scale + shift, Xte * scale + shift
    for j in spec.get("constant", ()):
        Xtr[:, j] = 3.25 if j else 0.0
        Xte[:, j] = rng.normal(size=m)  # a test value the training data never varied
    text = rng.normal(size=(n_class, spec["e"])).astype(np.float32)
    return Xtr.astype(np.float32), ytr, Xte.astype(np.float32), yte, n_class, text


def objective(W, b, Xs, y, classes, C=1.0):
    """sklearn 1.2's lbfgs objective and its gradient (W [K, p], b [K])."""
    L = Xs @ W.T + b
    L -= L.max(axis=1, keepdims=True)
    P = np.exp(L)
    P /= P.sum(axis=1, keepdims=True)
    yk = np.searchsorted(classes, y)
    f = -np.log(P[np.arange(len(y)), yk]).sum() + 0.5 / C * (W * W).sum()
    R = P
    R[np.arange(len(y)), yk] -= 1.0
    gW = R.T @ Xs + W / C
    gb = R.sum(axis=0)
    return f, np.sqrt((gW * gW).sum() + (gb * gb).sum())


def rank_of_true(pred, text, y):
    tn = np.linalg.norm(text.astype(np.float64), axis=1)
    cos = (pred @ text.astype(np.float64).T) / np.where(tn > 0, tn, np.inf)
    ranks = []
    for i in range(len(y)):
        s = cos[i]
        ranks.append(int(np.sum(s > s[y[i]]) + np.sum(s[: y[i]] == s[y[i]])))
    return np.array(ranks)


def run_case(args, name, spec, seed):
    Xtr, ytr, Xte, yte, n_class, text = draw(name, spec, seed)
    case = os.path.join(args.workdir, name + ".h5")
    out = os.path.join(args.workdir, name + ".out.h5")
    with h5py.File(case, "w") as f:
        f["train/X"], f["train/y"] = Xtr, ytr
        f["test/X"], f["test/y"] = Xte, yte
        f["text"] = text
        f.attrs["n_class"] = n_class
        f.attrs["ablate"] = np.array(ABLATE, dtype=np.int64)
        if spec.get("ftol", 0.0) is not None:
            f.attrs["ftol"] = spec.get("ftol", 0.0)
    if os.path.exists(out):
        os.remove(out)
    r = subprocess.run([args.stsae, "check-probe", case, out], capture_output=True, text=True)
    if r.returncode != 0:
        return False, "stsae exit %d: %s" % (r.returncode, r.stderr.strip())
    with h5py.File(out, "r") as f:
        o = {k: f[k][()] for k in ("probe/accuracy", "probe/loss", "probe/grad_norm", "probe/iterations",
                                  "probe/W", "probe/b", "probe/classes", "probe/rank", "probe/ablate_accuracy",
                                  "probe/pred", "ridge/alpha", "ridge/cv_mse", "ridge/W", "ridge/b",
                                  "ridge/r_at_1", "ridge/r_at_5")}
    fails, notes = [], []

    sc = StandardScaler().fit(Xtr.astype(np.float64))
    Xs, Xts = sc.transform(Xtr.astype(np.float64)), sc.transform(Xte.astype(np.float64))
    W, b, classes = o["probe/W"], o["probe/b"], o["probe/classes"]

    # --- probe -------------------------------------------------------------
    if len(np.unique(ytr)) == 1:  # sklearn refuses; stsae: W = 0, always that class
        if not (np.all(W == 0) and np.all(o["probe/pred"] == ytr[0]) and o["probe/loss"] == 0):
            fails.append("one class: expected W = 0, loss 0 and every prediction %d" % ytr[0])
        acc = np.mean(yte == ytr[0])
        if abs(o["probe/accuracy"] - acc) > TOL_PROBE:
            fails.append("one class: accuracy %.4f vs %.4f" % (o["probe/accuracy"], acc))
    else:
        clf = LogisticRegression(C=1.0, solver="lbfgs", multi_class="multinomial", tol=1e-10, max_iter=10000)
        clf.fit(Xs, ytr)
        if not np.array_equal(classes, clf.classes_):
            fails.append("classes %s vs sklearn %s" % (classes, clf.classes_))
        else:
            W_sk, b_sk = clf.coef_, clf.intercept_
            if len(classes) == 2:  # sklearn keeps class 1's row; class 0's is its negative
                W_sk, b_sk = np.vstack([-W_sk, W_sk]), np.concatenate([-b_sk, b_sk])
            acc_sk = clf.score(Xts, yte)
            f_sk, _ = objective(W_sk, b_sk, Xs, ytr, clf.classes_)
            f_ours, g_ours = objective(W, b, Xs, ytr, classes)
            dW = np.abs(W - W_sk).max() / max(1.0, np.abs(W_sk).max())
            bc, bc_sk = b - b.mean(), b_sk - b_sk.mean()
            db = np.abs(bc - bc_sk).max() / max(1.0, np.abs(bc_sk).max())
            notes.append("probe acc %.4f (sk %.4f) loss %.6f (sk %.6f, d %.1e) |g| %.1e it %d dW %.1e db %.1e"
                         % (o["probe/accuracy"], acc_sk, o["probe/loss"], f_sk, o["probe/loss"] - f_sk, g_ours,
                            o["probe/iterations"], dW, db))
            if abs(o["probe/accuracy"] - acc_sk) > TOL_PROBE:
                fails.append("accuracy %.4f vs sklearn %.4f" % (o["probe/accuracy"], acc_sk))
            if abs(o["probe/loss"] - f_sk) > TOL_PROBE:
                fails.append("loss %.6f vs sklearn %.6f" % (o["probe/loss"], f_sk))
            if abs(o["probe/loss"] - f_ours) > 1e-6 * max(1.0, abs(f_ours)):
                fails.append("reported loss %.8f but its W, b give %.8f" % (o["probe/loss"], f_ours))
            if spec.get("ftol", 0.0) is not None and g_ours > TOL_GRAD:
                fails.append("gradient norm at stsae's solution %.2e > %.0e" % (g_ours, TOL_GRAD))
            if dW > TOL_PROBE or db > TOL_PROBE:
                fails.append("coefficients differ: W %.2e, b %.2e" % (dW, db))

            # --- ablation --------------------------------------------------
            norms = np.linalg.norm(W, axis=0)
            expect = np.lexsort((np.arange(len(norms)), -norms))
            if not np.array_equal(o["probe/rank"], expect):
                fails.append("feature ranking is not the descending weight-norm order")
            top_sk = set(np.argsort(-np.linalg.norm(W_sk, axis=0), kind="stable")[:10])
            if set(o["probe/rank"][:10]) != top_sk:
                fails.append("top-10 features differ from sklearn's")
            for a, n_abl in enumerate(ABLATE):
                Xa = Xte.astype(np.float64).copy()
                Xa[:, o["probe/rank"][:n_abl]] = 0.0
                acc_a = clf.score(sc.transform(Xa), yte)
                if abs(o["probe/ablate_accuracy"][a] - acc_a) > TOL_PROBE:
                    fails.append("ablate top %d: %.4f vs sklearn %.4f" % (n_abl, o["probe/ablate_accuracy"][a], acc_a))

    # --- ridge retrieval ---------------------------------------------------
    Y = text[ytr].astype(np.float64)
    gs = GridSearchCV(Ridge(), {"alpha": ALPHAS}, cv=KFold(5), scoring="neg_mean_squared_error").fit(Xs, Y)
    mse_sk = -gs.cv_results_["mean_test_score"]
    d_mse = np.max(np.abs(o["ridge/cv_mse"] - mse_sk) / np.maximum(mse_sk, 1e-12))
    best = gs.best_estimator_
    Wsk = best.coef_.T  # [p, e]
    d_rW = np.abs(o["ridge/W"] - Wsk).max() / max(np.abs(Wsk).max(), 1e-300)
    d_rb = np.abs(o["ridge/b"] - best.intercept_).max() / max(np.abs(best.intercept_).max(), 1e-12)
    ranks = rank_of_true(best.predict(Xts), text, yte)
    r1, r5 = np.mean(ranks < 1), np.mean(ranks < 5)
    notes.append("ridge alpha %g (sk %g) cv %.1e W %.1e b %.1e R@1 %.4f (sk %.4f) R@5 %.4f (sk %.4f)"
                 % (o["ridge/alpha"], gs.best_params_["alpha"], d_mse, d_rW, d_rb, o["ridge/r_at_1"], r1,
                    o["ridge/r_at_5"], r5))
    if o["ridge/alpha"] != gs.best_params_["alpha"]:
        fails.append("ridge alpha %g vs sklearn %g" % (o["ridge/alpha"], gs.best_params_["alpha"]))
    if d_mse > TOL_RIDGE:
        fails.append("ridge CV MSE differs by %.2e relative" % d_mse)
    if d_rW > TOL_RIDGE or d_rb > TOL_RIDGE:
        fails.append("ridge W/b differ by %.2e / %.2e relative" % (d_rW, d_rb))
    if o["ridge/r_at_1"] != r1 or o["ridge/r_at_5"] != r5:
        fails.append("R@1/R@5 %.4f/%.4f vs sklearn %.4f/%.4f" % (o["ridge/r_at_1"], o["ridge/r_at_5"], r1, r5))
    return not fails, "; ".join(fails) if fails else " | ".join(notes)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stsae", required=True)
    ap.add_argument("--workdir")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
    else:
        args.workdir = tempfile.mkdtemp(prefix="stsae_probe_")
    passed = failed = 0
    for i, name in enumerate(args.cases.split(",")):
        ok, msg = run_case(args, name, CASES[name], args.seed * 1000 + i)
        print("%-14s %s  %s" % (name, "ok  " if ok else "FAIL", msg), flush=True)
        passed += ok
        failed += not ok
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
