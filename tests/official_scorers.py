"""Independent implementations of each benchmark's official scoring, written from the protocols (not from
cirkit's code) so that ``cirkit evaluate`` can be checked against them to 1e-9. All return percentages.

- CIRR (server / official val code): the reference is deleted from the ranking before scoring; Recall@K
  asks whether the target is among the first K; Recall_subset@K ranks only img_set members.
- CIRCO (official ``evaluation.py``): labels = isin(prediction, gt ids); precision at every position is the
  running label count over the position, kept where the label is 1; AP@K = sum over the first K / min(#gt, K);
  Recall@K = number of positions in the first K equal to the annotated target (so repeats count).
- FashionIQ: R@K per category over its own gallery; the table's average is the mean over categories.
- GeneCIS: R@K within each query's own gallery.
- Flickr30K / MSCOCO: every caption is a query for its image; R@K over captions.
- VisDial (ChatIR): Hits@K at round r = share of dialogues whose target appeared in the top K at any round <= r.
"""

import numpy as np


def _found_within(ranking, target, k):
    return 1.0 if target in list(ranking)[:k] else 0.0


def cirr_recall(predictions, references, targets, ks=(1, 5, 10, 50)):
    out = {}
    for k in ks:
        hits = [_found_within([n for n in predictions[q] if n != references[q]], targets[q], k) for q in targets]
        out[f"R@{k}"] = 100.0 * sum(hits) / len(hits)
    return out


def cirr_recall_subset(predictions, references, members, targets, ks=(1, 2, 3)):
    out = {}
    for k in ks:
        hits = []
        for q in targets:
            kept = [n for n in predictions[q] if n != references[q] and n in members[q]]
            hits.append(_found_within(kept, targets[q], k))
        out[f"Rs@{k}"] = 100.0 * sum(hits) / len(hits)
    return out


def circo_official(predictions, gt_ids, target_ids, aspects, ks=(5, 10, 25, 50)):
    """The official script's arithmetic (every occurrence counts), in plain numpy."""
    aps = {k: [] for k in ks}
    recalls = {k: [] for k in ks}
    per_aspect = {}
    for q in target_ids:
        pred = np.array(predictions[q], dtype=np.int64)
        gts = np.array(gt_ids[q], dtype=np.int64)
        labels = np.isin(pred, gts).astype(np.float64)
        precision = np.cumsum(labels) * labels / np.arange(1, len(labels) + 1)
        for k in ks:
            aps[k].append(precision[:k].sum() / min(len(gts), k))
            recalls[k].append(float(np.sum(pred[:k] == int(target_ids[q]))))
        for a in aspects[q]:
            per_aspect.setdefault(a, []).append(precision[:10].sum() / min(len(gts), 10))
    out = {f"mAP@{k}": 100.0 * float(np.mean(aps[k])) for k in ks}
    out.update({f"R@{k}": 100.0 * float(np.mean(recalls[k])) for k in ks})
    out.update({f"mAP@10 {a}": 100.0 * float(np.mean(v)) for a, v in per_aspect.items()})
    return out


def circo_first_occurrence(predictions, gt_ids, target_ids, aspects, ks=(5, 10, 25, 50)):
    """cirkit's documented variant: an id counts at its first place only; a repeat keeps its place."""
    cleaned = {}
    for q, pred in predictions.items():
        seen, row = set(), []
        for x in pred:
            row.append(x if x not in seen else -1)  # -1 is never a ground truth
            seen.add(x)
        cleaned[q] = row
    out = circo_official(cleaned, gt_ids, target_ids, aspects, ks)
    return out


def recall(predictions, targets, ks):
    return {f"R@{k}": 100.0 * float(np.mean([_found_within(predictions[q], t, k) for q, t in targets.items()]))
            for k in ks}


def fashioniq(per_category_predictions, per_category_targets, ks=(10, 50)):
    table = {}
    for cat in per_category_targets:
        r = recall(per_category_predictions[cat], per_category_targets[cat], ks)
        for k in ks:
            table[f"{cat} R@{k}"] = r[f"R@{k}"]
    for k in ks:
        table[f"avg R@{k}"] = float(np.mean([table[f"{c} R@{k}"] for c in per_category_targets]))
    table["avg"] = float(np.mean([table[f"avg R@{k}"] for k in ks]))
    return table


def genecis(predictions, galleries, targets):
    kept = {q: [n for n in predictions[q] if n in galleries[q]] for q in targets}
    return recall(kept, targets, (1, 2, 3))


def visdial_hits(predictions_per_round, targets, k=10):
    n_rounds = len(next(iter(predictions_per_round.values())))
    out = {}
    for r in range(n_rounds):
        found = [any(t in predictions_per_round[q][j][:k] for j in range(r + 1)) for q, t in targets.items()]
        out[f"Hits@{k} r{r}"] = 100.0 * sum(found) / len(found)
    return out


def assert_close(ours: dict, reference: dict, tol: float = 1e-9) -> None:
    assert set(ours) == set(reference), (sorted(set(ours) ^ set(reference)))
    bad = {k: (ours[k], reference[k]) for k in reference if abs(ours[k] - reference[k]) > tol}
    assert not bad, bad
