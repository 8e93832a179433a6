"""Read Slicer markups files (.mrk.json, markups-schema-v1.0.x) into line specs and regions (world RAS mm).

Mapping per markups "type":
- Line        -> LineSpec through its 2 control points.
- Curve       -> LineSpec through the curve's interpolated points.
- ClosedCurve -> PolygonRegion through the closed curve's interpolated points.
- ROI         -> BoxRegion from "center", "size" and "orientation" (row-major 3x3 whose columns are the box
                 axes); roiType Box or BoundingBox; insideOut ROIs are rejected.
- Fiducial    -> one CircleRegion (or SphereRegion) per control point, named by the point label; needs a
                 diameter (point_diameter_mm).
- Plane, Angle and others -> ValueError.
Coordinates: "coordinateSystem" LPS (Slicer's default when saving, also assumed when the key is absent) is
converted to RAS by negating the first two coordinates; "coordinateUnits" um is converted to mm. Only control
points whose positionStatus is "defined" (or absent) are used. Parent transforms are not stored in the file.

Curve interpolation: the file stores control points only (the curve type lives in the .mrml scene), so a
curve loaded from a .mrk.json uses Slicer's default, "spline": a cubic spline per coordinate, parameterised by
control-point index, with zero end derivatives for open curves (vtkCardinalSpline via vtkParametricSpline, as in
vtkCurveGenerator) and periodic for closed curves, sampled at 10 points per segment. A non-standard
"curveType": "linear" key gives a polyline through the control points. The result matches Slicer's own curve
points (Testing/Data/metrics/slicer_reference.json, made with slicer-core 5.13).
"""

import json
import os

import numpy as np

from .measurement import LineSpec
from .regions import PLANE_NORMALS, BoxRegion, CircleRegion, PolygonRegion, SphereRegion

LPS_TO_RAS_3 = np.diag([-1.0, -1.0, 1.0])
POINTS_PER_SEGMENT = 10
LINE_TYPES = ("Line", "Curve")
REGION_TYPES = ("ClosedCurve", "ROI", "Fiducial")
_UNITS_TO_MM = {"mm": 1.0, "um": 1e-3}


def curve_points(control_points, closed=False, curve_type="spline", points_per_segment=POINTS_PER_SEGMENT):
    """Interpolated curve points like Slicer's vtkCurveGenerator (see module docstring)."""
    from scipy.interpolate import CubicSpline

    points = np.asarray(control_points, dtype=float)
    count = len(points)
    segments = count if closed else count - 1
    parameters = np.linspace(0.0, 1.0, points_per_segment * segments + 1) * segments
    knots = np.arange(segments + 1, dtype=float)
    values = np.vstack([points, points[:1]]) if closed else points
    if curve_type == "linear":
        return np.column_stack([np.interp(parameters, knots, values[:, axis]) for axis in range(3)])
    if curve_type != "spline":
        raise ValueError(f"unsupported curve type '{curve_type}' (use 'spline' or 'linear')")
    boundary = "periodic" if closed else ((1, np.zeros(3)), (1, np.zeros(3)))
    return CubicSpline(knots, values, axis=0, bc_type=boundary)(parameters)


def _fail(path, problem):
    raise ValueError(f"markups file '{path}': {problem}")


def _load_json(path):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"markups file '{path}' does not exist")
    try:
        with open(path, encoding="utf-8") as stream:
            document = json.load(stream)
    except json.JSONDecodeError as error:
        _fail(path, f"malformed JSON ({error.msg} at line {error.lineno}, column {error.colno})")
    except UnicodeDecodeError:
        _fail(path, "not a text (JSON) file")
    if not isinstance(document, dict) or not isinstance(document.get("markups"), list):
        _fail(path, "not a Slicer markups file (no 'markups' list)")
    schema = document.get("@schema", "")
    if schema and "markups-schema" not in str(schema):
        _fail(path, f"unexpected @schema '{schema}'")
    if not document["markups"]:
        _fail(path, "contains no markups")
    return document["markups"]


def _coordinate_transform(path, markup):
    system = markup.get("coordinateSystem", "LPS")
    if system not in ("LPS", "RAS"):
        _fail(path, f"unknown coordinateSystem '{system}' (expected LPS or RAS)")
    units = markup.get("coordinateUnits", "mm")
    if units not in _UNITS_TO_MM:
        _fail(path, f"unknown coordinateUnits '{units}' (expected mm or um)")
    flip = LPS_TO_RAS_3 if system == "LPS" else np.eye(3)
    return flip, _UNITS_TO_MM[units]


def _numbers(path, value, count, what):
    if not isinstance(value, list) or len(value) != count:
        _fail(path, f"{what} must be a list of {count} numbers, got {value!r}")
    try:
        numbers = np.array([float(v) for v in value])
    except (TypeError, ValueError):
        _fail(path, f"{what} must be numbers, got {value!r}")
    if not np.all(np.isfinite(numbers)):
        _fail(path, f"{what} must be finite numbers, got {value!r}")
    return numbers


def _control_points(path, markup, flip, scale):
    raw = markup.get("controlPoints", [])
    if not isinstance(raw, list):
        _fail(path, "'controlPoints' must be a list")
    labels, positions = [], []
    for index, point in enumerate(raw):
        if not isinstance(point, dict):
            _fail(path, f"control point {index + 1} is not an object")
        if point.get("positionStatus", "defined") != "defined":
            continue
        positions.append(flip @ (_numbers(path, point.get("position"), 3, f"control point {index + 1} position") * scale))
        labels.append(str(point.get("label") or f"point {index + 1}"))
    return labels, np.array(positions).reshape(-1, 3)


def _markup_name(path, markup, index, count):
    if isinstance(markup.get("name"), str) and markup["name"]:
        return markup["name"]
    stem = os.path.basename(os.fspath(path))
    for suffix in (".mrk.json", ".json"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return stem if count == 1 else f"{stem}_{index + 1}"


def _roi(path, markup, name, flip, scale):
    roi_type = markup.get("roiType", "Box")
    if roi_type not in ("Box", "BoundingBox"):
        _fail(path, f"ROI type '{roi_type}' is not supported (Box or BoundingBox)")
    if markup.get("insideOut", False):
        _fail(path, "inside-out ROIs are not supported")
    center = flip @ (_numbers(path, markup.get("center"), 3, "ROI center") * scale)
    size = _numbers(path, markup.get("size"), 3, "ROI size") * scale
    orientation = markup.get("orientation", [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    axes = flip @ _numbers(path, orientation, 9, "ROI orientation").reshape(3, 3)
    return BoxRegion(name, center, size, axes)


def read_markups_file(path, point_diameter_mm=None, plane="axial", point_shape="circle") -> list:
    """LineSpec and region objects for every markup in a .mrk.json file (see module docstring).

    point_diameter_mm / plane / point_shape ("circle" or "sphere") turn Fiducial points into regions.
    """
    if plane not in PLANE_NORMALS:
        raise ValueError(f"plane must be one of {sorted(PLANE_NORMALS)}, got '{plane}'")
    if point_shape not in ("circle", "sphere"):
        raise ValueError(f"point_shape must be 'circle' or 'sphere', got '{point_shape}'")
    markups = _load_json(path)
    items = []
    for index, markup in enumerate(markups):
        if not isinstance(markup, dict):
            _fail(path, f"markup {index + 1} is not an object")
        kind = markup.get("type")
        if kind not in LINE_TYPES + REGION_TYPES:
            _fail(path, f"markups type '{kind}' is not supported (use {', '.join(LINE_TYPES + REGION_TYPES)})")
        name = _markup_name(path, markup, index, len(markups))
        flip, scale = _coordinate_transform(path, markup)
        if kind == "ROI":
            items.append(_roi(path, markup, name, flip, scale))
            continue
        labels, points = _control_points(path, markup, flip, scale)
        curve_type = markup.get("curveType", "spline")
        try:
            if kind == "Line":
                if len(points) != 2:
                    _fail(path, f"line '{name}' needs exactly 2 defined control points, has {len(points)}")
                items.append(LineSpec(name, points))
            elif kind == "Curve":
                if len(points) < 2:
                    _fail(path, f"curve '{name}' needs at least 2 defined control points, has {len(points)}")
                items.append(LineSpec(name, curve_points(points, False, curve_type)))
            elif kind == "ClosedCurve":
                if len(points) < 3:
                    _fail(path, f"closed curve '{name}' needs at least 3 control points, has {len(points)}")
                items.append(PolygonRegion(name, curve_points(points, True, curve_type)[:-1]))
            else:  # Fiducial
                if point_diameter_mm is None:
                    _fail(path, f"point list '{name}' needs a diameter to become circular/spherical regions")
                if not points.size:
                    _fail(path, f"point list '{name}' has no defined control points")
                for label, point in zip(labels, points):
                    if point_shape == "circle":
                        items.append(CircleRegion(label, point, point_diameter_mm, plane))
                    else:
                        items.append(SphereRegion(label, point, point_diameter_mm))
        except ValueError as error:
            if str(error).startswith(f"markups file '{path}'"):
                raise
            _fail(path, str(error))
    return items
