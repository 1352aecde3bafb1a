"""LightGBM without its scikit-learn layer (`shelfwise._lazy.lightgbm`): a server, a search
command or a training that needs only the booster API does not pay for importing scikit-learn
(~1.5 s of a server's start), and code that wants the estimator classes still gets them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_the_booster_api_comes_without_scikit_learn_and_the_estimators_on_request():
    out = _python(
        "import sys, numpy as np\n"
        "from shelfwise._lazy import lightgbm\n"
        "lgb = lightgbm()\n"
        "x = np.random.default_rng(0).normal(size=(200, 3)); y = (x[:, 0] > 0).astype(float)\n"
        "b = lgb.train({'objective': 'binary', 'verbose': -1}, lgb.Dataset(x, y), num_boost_round=3)\n"
        "print('sklearn' in sys.modules, b.num_trees())\n"
        "lgb = lightgbm(sklearn_api=True)\n"
        "c = lgb.LGBMClassifier(n_estimators=3, verbose=-1).fit(x, y.astype(int))\n"
        "print('sklearn' in sys.modules, c.predict_proba(x[:1]).shape)\n"
    )
    assert out.splitlines() == ["False 3", "True (1, 2)"]


def test_a_ranker_pickled_with_scikit_learn_loads_and_scores_in_a_process_without_it(tmp_path):
    """A fusion saved by an earlier version holds scikit-learn LGBMRanker objects: still served."""
    pickled = tmp_path / "ranker.pkl"
    make = (
        "import pickle, numpy as np, lightgbm as lgb\n"
        "x = np.random.default_rng(1).normal(size=(300, 4)); y = (x[:, 0] > 0).astype(float)\n"
        "r = lgb.LGBMRanker(n_estimators=4, verbose=-1).fit(x, y, group=[30] * 10)\n"
        f"pickle.dump(r, open({str(pickled)!r}, 'wb'))\n"
        "print(r.booster_.predict(x[:3]).round(6).tolist())\n"
    )
    expected = _python(make)
    served = _python(
        "import pickle, sys, numpy as np\n"
        "from shelfwise._lazy import lightgbm\n"
        "from shelfwise.models._fusion import _predict\n"
        "lightgbm()\n"
        f"r = pickle.load(open({str(pickled)!r}, 'rb'))\n"
        "x = np.random.default_rng(1).normal(size=(300, 4))\n"
        "assert 'sklearn' not in sys.modules\n"
        "print(_predict(r, x[:3]).astype(float).round(6).tolist())\n"
    )
    assert np.allclose(eval(served), eval(expected), atol=1e-5)  # (float32 against float64)


def test_a_fusion_trained_now_holds_boosters_and_loads_without_scikit_learn(tmp_path):
    import pickle

    from shelfwise.features import Interactions, leave_last_out
    from shelfwise.models import Fusion, Popularity, Transitions

    # cycles: each user walks 0, 1, 2, ... from their own start (the next item is the one after)
    users = np.repeat(np.arange(80), 6)
    items = (users + np.tile(np.arange(6), 80)) % 20
    inter = Interactions.from_arrays(users, items, np.arange(len(users)))
    split = leave_last_out(inter)
    gens = {"popularity": Popularity().fit(split.train), "transitions": Transitions().fit(split.train)}
    fusion = Fusion(trees=20, min_child_samples=2, candidates=10, holdout=0.2).fit(
        split.train, generators=gens, validation=split.validation
    )
    assert fusion.rankers_ and all(type(r).__name__ == "Booster" for r in fusion.rankers_)
    x = np.random.default_rng(2).normal(size=(7, len(fusion.features_))).astype(np.float32)
    fusion.save(tmp_path / "fusion")
    (tmp_path / "inter.pkl").write_bytes(pickle.dumps(split.train))
    np.save(tmp_path / "x.npy", x)
    out = _python(
        "import pickle, sys, numpy as np\n"
        "from pathlib import Path\n"
        "from shelfwise.models import Fusion\n"
        f"d = Path({str(tmp_path)!r})\n"
        "f = Fusion.load(d / 'fusion', pickle.loads((d / 'inter.pkl').read_bytes()))\n"
        "print('sklearn' in sys.modules)\n"
        "print(f._predict(np.load(d / 'x.npy')).tolist())\n"
    )
    lean, scores = out.splitlines()
    assert lean == "False"
    np.testing.assert_allclose(eval(scores), fusion._predict(x), rtol=1e-6)
