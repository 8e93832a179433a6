"""The Slicer module file and its .ui must agree (this breaks only inside Slicer otherwise): every
parameter-node field is bound to a widget of a type connectGui can use, every `self.ui.<name>` exists, and
every MRML widget receives the scene. Checked statically: qt and the Slicer GUI are not available here."""

import ast
import xml.etree.ElementTree as ElementTree
from pathlib import Path

MODULE_DIR = Path(__file__).resolve().parents[1] / "MRSuperRes"
MODULE_FILE = MODULE_DIR / "MRSuperRes.py"
UI_FILE = MODULE_DIR / "Resources/UI/MRSuperRes.ui"


def ui_widgets():
    """{widget name: (class, SlicerParameterName or None)} and the scene connections of the .ui file."""
    root = ElementTree.parse(UI_FILE).getroot()
    widgets = {}
    for widget in root.iter("widget"):
        parameter = None
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                parameter = prop.find("string").text
        widgets[widget.get("name")] = (widget.get("class"), parameter)
    connections = {(c.findtext("sender"), c.findtext("signal"), c.findtext("receiver"), c.findtext("slot"))
                   for c in root.iter("connection")}
    return root.find("widget").get("name"), widgets, connections


def parameter_fields():
    """{field name: annotation source} of the @parameterNodeWrapper class."""
    tree = ast.parse(MODULE_FILE.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(
                isinstance(d, ast.Name) and d.id == "parameterNodeWrapper" for d in node.decorator_list):
            return {item.target.id: ast.unparse(item.annotation) for item in node.body
                    if isinstance(item, ast.AnnAssign)}
    raise AssertionError("no @parameterNodeWrapper class in MRSuperRes.py")


def test_every_parameter_is_bound_to_a_suitable_widget():
    _, widgets, _ = ui_widgets()
    bound = {parameter: cls for cls, parameter in widgets.values() if parameter}
    fields = parameter_fields()
    assert set(bound) == set(fields), f"unbound: {set(fields) - set(bound)}, unknown: {set(bound) - set(fields)}"
    for name, annotation in fields.items():
        widget_class = bound[name]
        if "Choice" in annotation:
            assert widget_class == "QComboBox", name  # QComboBox + Choice: connectGui's stringable connector
        elif annotation.startswith("vtkMRML"):
            assert widget_class == "qMRMLNodeComboBox", name
        elif "float" in annotation:
            assert "WithinRange" in annotation and widget_class == "ctkSliderWidget", name
        elif "int" in annotation:
            assert widget_class == "QSpinBox", name
        elif annotation == "bool":
            assert widget_class == "QCheckBox", name  # connectGui's QCheckBox-to-bool connector
        else:
            raise AssertionError(f"{name}: unexpected annotation {annotation}")


def test_every_ui_reference_of_the_module_exists():
    _, widgets, _ = ui_widgets()
    tree = ast.parse(MODULE_FILE.read_text(encoding="utf-8"))
    referenced = {node.attr for node in ast.walk(tree)
                  if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                  and node.value.attr == "ui" and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"}
    assert referenced, "the module uses no self.ui widgets?"
    assert referenced <= set(widgets), f"missing in the .ui: {referenced - set(widgets)}"


def test_mrml_widgets_receive_the_scene():
    top, widgets, connections = ui_widgets()
    for name, (cls, _) in widgets.items():
        if cls.startswith("qMRML") and name != top:
            assert (top, "mrmlSceneChanged(vtkMRMLScene*)", name, "setMRMLScene(vtkMRMLScene*)") in connections, name
    assert widgets[top][0] == "qMRMLWidget"


def test_module_file_follows_the_slicer_template():
    text = MODULE_FILE.read_text(encoding="utf-8")
    tree = ast.parse(text)
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    assert {"MRSuperRes", "MRSuperResWidget", "MRSuperResLogic", "MRSuperResTest"} <= set(classes)
    assert "connectGui(self.ui)" in text and "disconnectGui(" in text
    assert "tryWithErrorDisplay" in text and 'connect("startupCompleted()", registerSampleData)' in text
    # torch/monai are never imported at module level (the module must load before PyTorch is installed).
    top_level_imports = {alias.name.split(".")[0] for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
                         for alias in node.names} | {node.module.split(".")[0] for node in tree.body
                                                     if isinstance(node, ast.ImportFrom) and node.module}
    assert not top_level_imports & {"torch", "monai"}
    test_methods = [node.name for node in classes["MRSuperResTest"].body if isinstance(node, ast.FunctionDef)]
    assert "runTest" in test_methods and sum(name.startswith("test_") for name in test_methods) >= 2


def test_library_modules_do_not_import_torch_at_import_time():
    import subprocess
    import sys

    code = ("import sys; import MRSuperResLib.mrml_logic, MRSuperResLib.mrml_nodes, MRSuperResLib.worker_process, "
            "MRSuperResLib.dependencies, MRSuperResLib.dicom_export, MRSuperResLib.cli_enhance, MRSuperResLib.cli_demo; "
            "print(sorted(m for m in ('torch', 'monai', 'vtk', 'slicer') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
