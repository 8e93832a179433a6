"""MRQualityMetrics.ui against MRQualityMetrics.py, without Qt: the .ui is valid Designer XML, every widget bound with
a SlicerParameterName matches a field of the @parameterNodeWrapper class (name and a widget type that the
parameter node wrapper can connect), and every `self.ui.<name>` the module uses exists in the .ui.
slicer.parameterNodeWrapper needs the Slicer application, so MRQualityMetrics.py is read with `ast`."""

import ast
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from MRQualityMetricsLib import mrml_logic, mrml_nodes

MODULE_DIR = Path(__file__).resolve().parents[1] / "MRQualityMetrics"
UI_PATH = MODULE_DIR / "Resources" / "UI" / "MRQualityMetrics.ui"
MODULE_PATH = MODULE_DIR / "MRQualityMetrics.py"
CONSTANTS = {"SNR_METHODS": mrml_logic.SNR_METHODS, "CNR_METHODS": mrml_logic.CNR_METHODS,
             "POINT_REGION_SHAPES": mrml_nodes.POINT_REGION_SHAPES}


def widgetProperty(widget, name):
    element = widget.find(f"property[@name='{name}']")
    if element is None:
        return None
    value = element[0]
    if value.tag == "stringlist":
        return [item.text for item in value]
    if value.tag in ("double", "number"):
        return float(value.text)
    if value.tag == "bool":
        return value.text == "true"
    return value.text


@pytest.fixture(scope="module")
def ui():
    return ElementTree.parse(UI_PATH).getroot()


@pytest.fixture(scope="module")
def moduleTree():
    return ast.parse(MODULE_PATH.read_text())


@pytest.fixture(scope="module")
def parameterFields(moduleTree):
    """{field name: (annotation source, default source or None)} of the @parameterNodeWrapper class."""
    (wrapperClass,) = [node for node in moduleTree.body if isinstance(node, ast.ClassDef)
                       and any(ast.unparse(d) == "parameterNodeWrapper" for d in node.decorator_list)]
    assert wrapperClass.name == "MRQualityMetricsParameterNode"
    return {statement.target.id: (ast.unparse(statement.annotation),
                                  None if statement.value is None else ast.literal_eval(statement.value))
            for statement in wrapperClass.body if isinstance(statement, ast.AnnAssign)}


def boundWidgets(ui):
    return {widgetProperty(widget, "SlicerParameterName"): widget for widget in ui.iter("widget")
            if widgetProperty(widget, "SlicerParameterName")}


def test_ui_is_a_designer_file_with_a_qmrmlwidget_and_three_sections(ui):
    assert ui.tag == "ui" and ui.find("class").text == "MRQualityMetrics"
    top = ui.find("widget")
    assert top.get("class") == "qMRMLWidget" and top.get("name") == "MRQualityMetrics"
    sections = [widgetProperty(w, "text") for w in ui.iter("widget") if w.get("class") == "ctkCollapsibleButton"]
    assert sections == ["Inputs", "Measurements", "Outputs"]
    names = [w.get("name") for w in ui.iter("widget")]
    assert len(names) == len(set(names)), "widget names must be unique"
    declared = {custom.find("class").text for custom in ui.iter("customwidget")}
    used = {w.get("class") for w in ui.iter("widget")}
    assert {c for c in used if c.startswith(("ctk", "qMRML", "qSlicer"))} <= declared


def test_every_parameter_name_is_a_wrapper_field_and_every_field_is_bound(ui, parameterFields):
    bound = boundWidgets(ui)
    unknown = sorted(set(bound) - set(parameterFields))
    unbound = sorted(set(parameterFields) - set(bound))
    assert not unknown, f"SlicerParameterName without a parameter node field: {unknown}"
    assert not unbound, f"parameter node fields without a widget: {unbound}"


def test_widget_types_match_the_field_types(ui, parameterFields):
    for name, widget in boundWidgets(ui).items():
        annotation, default = parameterFields[name]
        widgetClass = widget.get("class")
        if "vtkMRML" in annotation:
            assert widgetClass == "qMRMLNodeComboBox", name
            annotated = sorted(re.findall(r"vtkMRML\w+", annotation))
            assert sorted(widgetProperty(widget, "nodeTypes")) == annotated, name
        elif annotation == "bool":
            assert widgetClass == "QCheckBox", name
        elif annotation.startswith("Annotated[float, WithinRange("):
            assert widgetClass == "ctkSliderWidget", name
            low, high = ast.literal_eval(annotation.split("WithinRange")[1].rstrip("]"))
            assert (widgetProperty(widget, "minimum"), widgetProperty(widget, "maximum")) == (low, high), name
            assert widgetProperty(widget, "value") == default, name
        elif annotation.startswith("Annotated[str, Choice("):
            assert widgetClass == "QComboBox", name
            choices = CONSTANTS[annotation.split("Choice(list(")[1].split(")")[0]]
            assert default in choices, name
        else:
            raise AssertionError(f"{name}: no GUI connector known for {annotation}")


def test_method_choices_are_the_ones_the_logic_understands(parameterFields):
    assert parameterFields["snrMethod"][1] in mrml_logic.SNR_METHODS
    assert parameterFields["cnrMethod"][1] in mrml_logic.CNR_METHODS
    assert parameterFields["circlePlane"][1] in mrml_nodes.POINT_REGION_SHAPES
    assert 1 <= parameterFields["circleDiameterMm"][1] <= 20


def test_mrml_widgets_get_the_scene_and_place_widgets_follow_their_selectors(ui):
    connections = {(c.find("sender").text, c.find("signal").text, c.find("receiver").text, c.find("slot").text)
                   for c in ui.iter("connection")}
    for widget in ui.iter("widget"):
        if widget.get("class") in ("qMRMLNodeComboBox", "qSlicerMarkupsPlaceWidget"):
            assert ("MRQualityMetrics", "mrmlSceneChanged(vtkMRMLScene*)", widget.get("name"),
                    "setMRMLScene(vtkMRMLScene*)") in connections, widget.get("name")
    for prefix in ("line", "regionA", "regionB", "backgroundRegion"):
        assert (f"{prefix}Selector", "currentNodeChanged(vtkMRMLNode*)", f"{prefix}PlaceWidget",
                "setCurrentNode(vtkMRMLNode*)") in connections


def test_the_module_uses_only_widgets_that_exist(ui, moduleTree):
    names = {widget.get("name") for widget in ui.iter("widget")}
    used = {node.attr for node in ast.walk(moduleTree) if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute) and node.value.attr == "ui"
            and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"}
    assert used and used <= names, f"missing in the .ui: {sorted(used - names)}"


def test_module_declares_title_category_logic_and_self_test(moduleTree):
    classes = {node.name: node for node in moduleTree.body if isinstance(node, ast.ClassDef)}
    source = ast.unparse(classes["MRQualityMetrics"])
    assert "_('MR Quality Metrics')" in source and "'Quantification'" in source
    assert [ast.unparse(base) for base in classes["MRQualityMetricsLogic"].bases] == [
        "ScriptedLoadableModuleLogic", "QualityMetricsMrmlLogic"]
    test = classes["MRQualityMetricsTest"]
    methods = {node.name for node in test.body if isinstance(node, ast.FunctionDef)}
    assert {"setUp", "runTest", "test_FwhmOfSyntheticSheet", "test_FailureKeepsTable"} <= methods
    assert "tryWithErrorDisplay" in ast.unparse(classes["MRQualityMetricsWidget"])
