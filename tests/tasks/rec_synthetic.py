"""Synthetic recommendation data with a known structure, written in the real raw formats.

* ratings generated from latent factors (ml-1m's 'user::item::rating::timestamp'): each
  user rates the items its hidden factor vector prefers, so who rated what is learnable
  from co-occurrence, and popularity alone predicts little;
* clicks from a logistic model with feature interactions (Criteo's TSV): the click logit
  is a sum of pairwise products of hidden vectors of a few categorical fields' values,
  which a model linear in the one-hot ids cannot express.
"""

import numpy as np

from datasets import criteo, download_and_convert_data


def latent_factor_ratings(path, num_users=100, num_items=150, per_user=20, dim=3, seed=0):
    """Writes ratings drawn from softmax(4 * u . v) per user; returns the path."""
    rng = np.random.default_rng(seed)
    users = rng.normal(size=(num_users, dim))
    items = rng.normal(size=(num_items, dim))
    lines = []
    for u in range(num_users):
        logits = 4.0 * items @ users[u] / np.sqrt(dim)
        p = np.exp(logits - logits.max())
        chosen = rng.choice(num_items, size=per_user, replace=False, p=p / p.sum())
        for t, i in enumerate(rng.permutation(chosen)):
            lines.append(f"{u + 1}::{i + 1}::{int(rng.integers(1, 6))}::{1000 + t}\n")
    with open(path, "w") as f:
        f.write("".join(lines))
    return str(path)


def interaction_clicks(path, num_lines=12000, vocab=6, interacting=6, dim=2, seed=0):
    """Writes Criteo lines whose clicks follow sigmoid(sum_{i<j} 1.5 v_i . v_j) over the
    first `interacting` categorical fields (plus noise fields); returns the path."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(interacting, vocab, dim))
    values = rng.integers(0, vocab, size=(num_lines, criteo.NUM_SPARSE))
    picked = vectors[np.arange(interacting), values[:, :interacting]]  # [n, fields, dim]
    total = picked.sum(axis=1)
    pairwise = 0.5 * ((total**2).sum(-1) - (picked**2).sum(axis=(1, 2)))
    logit = 1.5 * pairwise
    labels = (rng.random(num_lines) < 1 / (1 + np.exp(-logit))).astype(int)
    dense = rng.integers(0, 20, size=(num_lines, criteo.NUM_DENSE))
    with open(path, "w") as f:
        for n in range(num_lines):
            sparse = [f"{f_ * 16 + v:04x}" for f_, v in enumerate(values[n])]
            f.write("\t".join([str(labels[n]), *map(str, dense[n]), *sparse]) + "\n")
    return str(path)


def convert(name, source, dataset_dir, **options):
    """Converts `source` with the public converter (as a user would)."""
    return download_and_convert_data.convert_dataset(name, dataset_dir, source=source, **options)
