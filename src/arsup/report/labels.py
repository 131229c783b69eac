"""Where each keep's name goes on the chart: near its point, never over another name, a kept point or the edge.

Plain geometry in display pixels (boxes x0, y0, x1, y1), measured by
matplotlib's own renderer before this is asked, so what is checked is
what is drawn. Greedy, in the order given (the keeps left to right): each
name takes the free place nearest its point, where a place is free when
it lies inside the area and covers no hard box (kept points, the legend,
the names placed before it); covering a soft box (a discard, the best
line) costs pixels of distance, so a name walks a little to leave the
line in sight. Places are tried on rings around the point (close fits)
and on a grid over the whole area (a dense cluster's names spread out to
empty space, joined to their points by leader lines); a grid place no
nearer than the best ring place cannot win and is not costed. A name with no
free place anywhere is None: the caller says so rather than overlap.
"""

from __future__ import annotations

import numpy as np

Box = tuple[float, float, float, float]

RADII = (3.0, 8.0, 14.0, 22.0, 32.0, 45.0, 60.0, 80.0)  # pixels from the point, for the close fits
ANGLES = np.deg2rad(np.arange(0.0, 360.0, 22.5))
GRID = (6.0, 4.0)  # the far places' spacing in pixels, across and up
GAP = 2.0  # pixels kept clear around every hard box


def _rings(point: tuple[float, float], size: tuple[float, float]) -> np.ndarray:
    """Boxes beside the point in 16 directions at each radius: the box's near corner or edge on the ray."""
    (px, py), (w, h) = point, size
    radius = np.repeat(RADII, len(ANGLES))
    angle = np.tile(ANGLES, len(RADII))
    cos, sin = np.round(np.cos(angle), 6), np.round(np.sin(angle), 6)
    cx = px + radius * cos + np.sign(cos) * w / 2
    cy = py + radius * sin + np.sign(sin) * h / 2
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def _grid(area: Box, size: tuple[float, float]) -> np.ndarray:
    (x0, y0, x1, y1), (w, h) = area, size
    xs, ys = np.arange(x0, x1 - w, GRID[0]), np.arange(y0, y1 - h, GRID[1])
    if not len(xs) or not len(ys):
        return np.empty((0, 4))
    gx, gy = np.meshgrid(xs, ys)
    gx, gy = gx.ravel(), gy.ravel()
    return np.stack([gx, gy, gx + w, gy + h], axis=1)


def _overlaps(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(len(boxes), len(others)): whether each box overlaps each other box."""
    if not len(others):
        return np.zeros((len(boxes), 0), dtype=bool)
    b, o = boxes[:, None, :], others[None, :, :]
    return (b[..., 0] < o[..., 2]) & (b[..., 2] > o[..., 0]) & (b[..., 1] < o[..., 3]) & (b[..., 3] > o[..., 1])


def distance(point: tuple[float, float], box: Box | np.ndarray) -> np.ndarray:
    """From the point to the nearest edge of each box (0 inside it)."""
    b = np.atleast_2d(np.asarray(box, dtype=float))
    dx = np.maximum.reduce([b[:, 0] - point[0], np.zeros(len(b)), point[0] - b[:, 2]])
    dy = np.maximum.reduce([b[:, 1] - point[1], np.zeros(len(b)), point[1] - b[:, 3]])
    return np.hypot(dx, dy)


def place(
    points: list[tuple[float, float]], sizes: list[tuple[float, float]], area: Box,
    hard: list[Box], soft: list[tuple[Box, float]],
) -> list[Box | None]:
    """One box of `sizes[i]` for each point, in order; None where no free place is left."""
    taken = np.array(hard, dtype=float).reshape(-1, 4) + np.array([-GAP, -GAP, GAP, GAP])
    soft_boxes = np.array([box for box, _ in soft], dtype=float).reshape(-1, 4)
    soft_costs = np.array([cost for _, cost in soft], dtype=float)
    x0, y0, x1, y1 = area
    placed: list[Box | None] = []
    for point, size in zip(points, sizes):
        best, lowest = None, np.inf
        for candidates in (_rings(point, size), _grid(area, size)):
            inside = (candidates[:, 0] >= x0) & (candidates[:, 1] >= y0) & (candidates[:, 2] <= x1) & (
                candidates[:, 3] <= y1)
            near = distance(point, candidates) < lowest  # a cost is never below the distance: the rest cannot win
            candidates = candidates[inside & near]
            candidates = candidates[~_overlaps(candidates, taken).any(axis=1)]
            if not len(candidates):
                continue
            cost = distance(point, candidates) + _overlaps(candidates, soft_boxes) @ soft_costs
            if cost.min() < lowest:
                best, lowest = candidates[int(np.argmin(cost))], float(cost.min())
        if best is None:
            placed.append(None)
            continue
        placed.append((float(best[0]), float(best[1]), float(best[2]), float(best[3])))
        taken = np.vstack([taken, best + np.array([-GAP, -GAP, GAP, GAP])])
    return placed
