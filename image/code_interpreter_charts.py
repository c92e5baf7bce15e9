"""Charts: what a matplotlib figure shows, as data, next to its PNG.

The IPython profile (ipython_kernel_config.py) loads this file into every Python kernel and
registers `ChartFormatter`, so that a displayed figure (the inline backend displays every figure
a cell draws) carries an `e2b/chart` entry beside `image/png`; the API hands it to clients as the
`chart` field of a `result`. The JSON is the shape e2b's code interpreter gives and its SDKs read
as `result.chart`: a line, scatter, bar, pie or box-and-whisker chart, a "superchart" for a
figure of several axes, or "unknown" with a title only.

Extraction never fails a cell and never writes to stderr: a figure it cannot read has no chart
(IPython would print a formatter's exception, and jupyter_client warns on stderr about NaN in a
message, so both are kept from reaching them).
"""

import math
import re
import sys
from datetime import date, datetime

from IPython.core.formatters import BaseFormatter
from traitlets import ObjectName, Unicode

MIME_TYPE = "e2b/chart"

# A chart is sent whole in one message next to the PNG; past this many points (all lines and
# scatters of the figure together, about 40 bytes of JSON each) the figure gets no chart.
MAX_POINTS = 100_000

# "Time (s)" or "Energy [J]": the unit is what the parentheses (after a space) or brackets hold.
UNIT_PATTERN = re.compile(r"\s\((.*?)\)|\[(.*?)\]")


class TooLarge(Exception):
    pass


class ChartFormatter(BaseFormatter):
    format_type = Unicode(MIME_TYPE)
    print_method = ObjectName("_repr_e2b_chart_")
    _return_type = (dict,)

    def __call__(self, obj):
        # Every displayed object passes through every formatter: only a figure of a matplotlib
        # the user already imported is worth a look.
        figure_module = sys.modules.get("matplotlib.figure")
        if self.enabled and figure_module is not None and isinstance(obj, figure_module.Figure):
            try:
                return figure_to_chart(obj)
            except Exception:
                return None
        return super().__call__(obj)


def register(shell):
    formatters = shell.display_formatter.formatters
    formatters[MIME_TYPE] = ChartFormatter(parent=shell.display_formatter)


def figure_to_chart(figure):
    """The chart of a figure, or None for a figure without data."""
    axes = [ax for ax in figure.get_axes() if ax.get_visible()]
    if not any(ax.has_data() for ax in axes):
        return None
    budget = [MAX_POINTS]
    try:
        if len(axes) == 1:
            return axes_to_chart(axes[0], budget)
        suptitle = suptitle_of(figure)
        return {
            "type": "superchart",
            "title": suptitle or None,
            "elements": [axes_to_chart(ax, budget) for ax in axes],
        }
    except TooLarge:
        return None


def suptitle_of(figure):
    if hasattr(figure, "get_suptitle"):  # matplotlib 3.8 and later
        return figure.get_suptitle()
    text = getattr(figure, "_suptitle", None)
    return text.get_text() if text is not None else ""


def axes_to_chart(ax, budget):
    kind = chart_type(ax)
    if kind == "line":
        return point_chart(ax, "line", line_elements(ax, budget))
    if kind == "scatter":
        return point_chart(ax, "scatter", scatter_elements(ax, budget))
    if kind == "bar":
        return bar_chart(ax)
    if kind == "pie":
        return pie_chart(ax)
    if kind == "box_and_whisker":
        chart = box_chart(ax)
        if chart is not None:
            return chart
    return {"type": "unknown", "title": ax.get_title() or None, "elements": []}


def chart_type(ax):
    from matplotlib.collections import PathCollection
    from matplotlib.container import BarContainer
    from matplotlib.patches import PathPatch, Rectangle, Wedge

    if ax.images or ax.tables:
        return "unknown"
    patches = list(ax.patches)
    collections = list(ax.collections)
    # axhline and the like may sit on any chart; a line chart of nothing else is still one.
    lines = [line for line in ax.lines if not is_reference_line(line)]

    if patches and not ax.lines and not collections and all(isinstance(p, Wedge) for p in patches):
        return "pie"
    if (
        any(isinstance(c, BarContainer) for c in ax.containers)
        and not lines
        and not collections
        and all(isinstance(p, Rectangle) for p in patches)
    ):
        return "bar"
    outlines = [line for line in lines if is_box_outline(line)]
    if (outlines or patches) and not collections and all(isinstance(p, PathPatch) for p in patches):
        return "box_and_whisker"
    if collections and not lines and not patches and all(isinstance(c, PathCollection) for c in collections):
        return "scatter"
    if ax.lines and not patches and not collections:
        return "line"
    return "unknown"


def is_reference_line(line):
    """axhline, axvline and grid-like segments: two points on one horizontal or vertical."""
    xy = line.get_xydata()
    return len(xy) == 2 and (xy[0, 0] == xy[1, 0] or xy[0, 1] == xy[1, 1])


def is_box_outline(line):
    """The box of a boxplot drawn without patch_artist: a closed axis-aligned rectangle."""
    xy = line.get_xydata()
    if len(xy) != 5 or tuple(xy[0]) != tuple(xy[4]):
        return False
    return len(set(xy[:4, 0])) == 2 and len(set(xy[:4, 1])) == 2


# ---- shared pieces


def axis_labels(ax):
    x_label = ax.get_xlabel() or None
    y_label = ax.get_ylabel() or None
    return {
        "title": ax.get_title() or None,
        "x_label": x_label,
        "y_label": y_label,
        "x_unit": unit_of(x_label),
        "y_unit": unit_of(y_label),
    }


def unit_of(label):
    if not label:
        return None
    match = UNIT_PATTERN.search(label)
    return (match.group(1) or match.group(2)) if match else None


def converter_of(axis):
    getter = getattr(axis, "get_converter", None)
    return getter() if getter is not None else getattr(axis, "converter", None)


def is_date_axis(axis):
    converter = converter_of(axis)
    return converter is not None and type(converter).__module__ == "matplotlib.dates"


def is_category_axis(axis):
    converter = converter_of(axis)
    return converter is not None and type(converter).__module__ == "matplotlib.category"


def scale_of(axis, scale):
    if is_date_axis(axis):
        return "datetime"
    if is_category_axis(axis):
        return "categorical"
    return scale


def ticks_of(axis, ticks):
    if is_date_axis(axis):
        from matplotlib.dates import num2date

        return [num2date(tick).isoformat() for tick in ticks]
    return [finite(tick) for tick in ticks]


def finite(value):
    value = float(value)
    return value if math.isfinite(value) else None


def json_values(values):
    """Plain JSON values for one coordinate of a line or scatter: numbers, ISO dates, text."""
    import numpy

    array = numpy.asarray(values)
    if array.dtype.kind in "biuf":
        floats = array.astype(float).ravel()
        return [v if math.isfinite(v) else None for v in floats.tolist()]
    if array.dtype.kind == "M":
        return [None if numpy.isnat(v) else str(v.astype("datetime64[s]")) for v in array.ravel()]
    return [json_value(v) for v in array.ravel().tolist()]


def json_value(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, str):
        return value
    try:
        return finite(value)
    except (TypeError, ValueError):
        return str(value)


def tick_label_at(labels_by_position, position):
    """The text of the tick at `position` (a bar's or box's centre), or the position itself."""
    for tick, text in labels_by_position:
        if math.isclose(tick, position, rel_tol=1e-9, abs_tol=1e-9) and text:
            return text
    return f"{position:g}"


def tick_labels(axis):
    return list(zip(axis.get_majorticklocs(), (t.get_text() for t in axis.get_majorticklabels())))


def rounded(value):
    """Eight significant digits: a quartile's float noise goes, its value stays."""
    return float(f"{float(value):.8g}")


# ---- line and scatter


def point_chart(ax, kind, elements):
    chart = {"type": kind, **axis_labels(ax), "elements": elements}
    for name, axis, scale in (("x", ax.xaxis, ax.get_xscale()), ("y", ax.yaxis, ax.get_yscale())):
        chart[f"{name}_ticks"] = ticks_of(axis, axis.get_majorticklocs())
        chart[f"{name}_tick_labels"] = [t.get_text() for t in axis.get_majorticklabels()]
        chart[f"{name}_scale"] = scale_of(axis, scale)
    return chart


def spend(budget, count):
    budget[0] -= count
    if budget[0] < 0:
        raise TooLarge()


def line_elements(ax, budget):
    elements = []
    only_reference_lines = all(is_reference_line(line) for line in ax.lines)
    for number, line in enumerate(ax.lines):
        if is_reference_line(line) and not only_reference_lines:
            continue
        x, y = line.get_xdata(), line.get_ydata()
        spend(budget, len(x))
        elements.append({"label": series_label(line.get_label(), "Line", number), "points": points(x, y)})
    return elements


def scatter_elements(ax, budget):
    date_x, date_y = is_date_axis(ax.xaxis), is_date_axis(ax.yaxis)
    elements = []
    for number, collection in enumerate(ax.collections):
        offsets = collection.get_offsets()
        spend(budget, len(offsets))
        x = dates_of(offsets[:, 0]) if date_x else offsets[:, 0]
        y = dates_of(offsets[:, 1]) if date_y else offsets[:, 1]
        elements.append({"label": series_label(collection.get_label(), "Series", number), "points": points(x, y)})
    return elements


def dates_of(numbers):
    from matplotlib.dates import num2date

    return [num2date(n).isoformat() for n in numbers]


def points(x, y):
    return [list(point) for point in zip(json_values(x), json_values(y))]


def series_label(label, word, number):
    # matplotlib names an unlabelled artist "_child3" or "_collection0"; say "Line 3" instead.
    return f"{word} {number}" if not label or label.startswith("_") else label


# ---- bar


def bar_chart(ax):
    from matplotlib.container import BarContainer

    chart = {"type": "bar", **axis_labels(ax), "elements": []}
    containers = [c for c in ax.containers if isinstance(c, BarContainer)]
    horizontal = all(getattr(c, "orientation", None) == "horizontal" for c in containers)
    if horizontal:
        swap_axes(chart)
    category_axis = ax.yaxis if horizontal else ax.xaxis
    labels = tick_labels(category_axis)
    for number, container in enumerate(containers):
        group = container.get_label()
        group = f"Group {number}" if not group or group.startswith("_") else group
        values = getattr(container, "datavalues", None)
        for index, rect in enumerate(container.patches):
            if horizontal:
                centre = rect.get_y() + rect.get_height() / 2
                size = rect.get_width()
            else:
                centre = rect.get_x() + rect.get_width() / 2
                size = rect.get_height()
            value = values[index] if values is not None and index < len(values) else size
            label = tick_label_at(labels, centre)
            chart["elements"].append({"label": label, "group": group, "value": finite(value)})
    return chart


def swap_axes(chart):
    """Bars and boxes lying down: `x_label` still names the categories, as in e2b's charts."""
    chart["x_label"], chart["y_label"] = chart["y_label"], chart["x_label"]
    chart["x_unit"], chart["y_unit"] = chart["y_unit"], chart["x_unit"]


# ---- pie


def pie_chart(ax):
    return {
        "type": "pie",
        "title": ax.get_title() or None,
        "elements": [
            {
                "label": wedge.get_label(),
                # Four decimals: a tenth of a percent is 0.36 degrees, and float noise goes.
                "angle": abs(round(float(wedge.theta2 - wedge.theta1), 4)),
                "radius": rounded(wedge.r),
            }
            for wedge in ax.patches
        ],
    }


# ---- box and whisker


def box_chart(ax):
    """Reads boxplot's artists back: the box, the median across it, a whisker from each end,
    markers beyond them. Tried upright, then lying down; None when neither reading fits."""
    from matplotlib.patches import PathPatch

    boxes = [p.get_path().vertices for p in ax.patches if isinstance(p, PathPatch)]
    boxes += [line.get_xydata() for line in ax.lines if is_box_outline(line)]
    # Fliers are markers without a line; whiskers, caps and the median are drawn segments.
    markers = [line.get_xydata() for line in ax.lines if not has_line_style(line)]
    segments = [line.get_xydata() for line in ax.lines if has_line_style(line) and len(line.get_xdata()) == 2]
    for horizontal in (False, True):
        elements = read_boxes(ax, boxes, segments, markers, horizontal)
        if elements is not None:
            chart = {"type": "box_and_whisker", **axis_labels(ax), "elements": elements}
            if horizontal:
                swap_axes(chart)
            return chart
    return None


def has_line_style(line):
    return line.get_linestyle() not in ("None", "none", "", " ")


def read_boxes(ax, boxes, segments, markers, horizontal):
    # In the upright reading, u runs across the boxes (the category axis), v along the values.
    def uv(xy):
        return (xy[:, 1], xy[:, 0]) if horizontal else (xy[:, 0], xy[:, 1])

    category_axis = ax.yaxis if horizontal else ax.xaxis
    labels = tick_labels(category_axis)
    elements = []
    for vertices in boxes:
        u, v = uv(vertices)
        u0, u1, q1, q3 = min(u), max(u), min(v), max(v)
        median = None
        low, high = q1, q3
        for segment in segments:
            su, sv = uv(segment)
            if sv[0] == sv[1] and su.min() >= u0 - 1e-9 and su.max() <= u1 + 1e-9 and q1 <= sv[0] <= q3:
                if math.isclose(su.min(), u0) and math.isclose(su.max(), u1):
                    median = sv[0]
            elif su[0] == su[1] and u0 <= su[0] <= u1:
                if math.isclose(sv.max(), q1):
                    low = sv.min()
                elif math.isclose(sv.min(), q3):
                    high = sv.max()
        if median is None:
            return None
        outliers = []
        for marker in markers:
            mu, mv = uv(marker)
            # A mean marker (showmeans) sits between the whiskers: not an outlier.
            outliers += [
                rounded(value) for pos, value in zip(mu, mv) if u0 <= pos <= u1 and not low <= value <= high
            ]
        elements.append(
            {
                "label": tick_label_at(labels, (u0 + u1) / 2),
                "min": rounded(low),
                "first_quartile": rounded(q1),
                "median": rounded(median),
                "third_quartile": rounded(q3),
                "max": rounded(high),
                "outliers": outliers,
            }
        )
    return elements
