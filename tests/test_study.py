"""The study model: option objects against the schema, registries against the schema's enums, the checks across
keys, the table of which rules read which key, and the layout as the only code that names a results path."""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
import re

import pytest
import yaml

from b2m import options
from b2m.features.registry import CLAP_BACKENDS, EXTRACTORS
from b2m.layout import Folder
from b2m.jobs import JOBS, job_document, job_kinds, options_of, readers
from b2m.study import STRUCTURAL_KEYS, ConfigError, Study
from conftest import REPO

# Shipped configs; `a+b` is b given after a (`--configfile a b`), deep-merged as Snakemake merges them.
CONFIGS = ["config/config.yaml", "config/ds003720.yaml", "config/config.yaml+config/decoders.yaml"]
SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())


def load(name: str) -> dict:
    from snakemake.utils import update_config

    first, *overlays = name.split("+")
    config = yaml.safe_load((REPO / first).read_text())
    for overlay in overlays:
        update_config(config, yaml.safe_load((REPO / overlay).read_text()))
    return config


def schema_leaves(node: dict, prefix: str = "") -> dict[str, dict]:
    """Dotted key → schema of every leaf property (a `*` for the names of additionalProperties objects)."""
    leaves = {}
    children = dict(node.get("properties", {}))
    if isinstance(node.get("additionalProperties"), dict) and "properties" in node["additionalProperties"]:
        children["*"] = node["additionalProperties"]
    for name, child in children.items():
        key = f"{prefix}{name}"
        if "properties" in child or isinstance(child.get("additionalProperties"), dict) and \
                "properties" in child["additionalProperties"]:
            leaves.update(schema_leaves(child, key + "."))
        else:
            leaves[key] = child
    return leaves


def config_leaves(config: dict, prefix: str = "") -> dict:
    """Dotted key → value of every key a config sets that the schema describes as one value (lists and maps of
    lists, such as label_sets, are one value)."""
    patterns, leaves = schema_leaves(SCHEMA), {}
    for name, value in config.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict) and value and not any(fnmatch.fnmatch(key, p) for p in patterns):
            leaves.update(config_leaves(value, key + "."))
        else:
            leaves[key] = value
    return leaves


def option_classes() -> list[type]:
    return sorted({cls for job in JOBS.values() for cls in job.options}, key=lambda c: c.section)


def generic(key: str) -> str:
    return re.sub(r"\{[a-z]+\}", "*", key)


def test_every_keyed_option_is_in_the_schema_and_every_schema_key_is_read():
    """The option objects and the schema describe the same keys: each keyed field names a schema key, and each
    schema key is read by a field or shapes the DAG (STRUCTURAL_KEYS)."""
    schema = set(schema_leaves(SCHEMA))
    keyed = {generic(f.metadata["key"]) for cls in option_classes() for f in dataclasses.fields(cls)
             if f.metadata["key"]}
    derived = {generic(k) for cls in option_classes() for f in dataclasses.fields(cls) for k in f.metadata["derived"]}
    assert {k for k in keyed if not any(fnmatch.fnmatch(s, k) for s in schema)} == set()
    covered = keyed | derived | set(STRUCTURAL_KEYS)
    unread = sorted(key for key in schema if not any(fnmatch.fnmatch(key, c) for c in covered))
    assert unread == []


def test_registries_are_the_schema_enums():
    leaves = schema_leaves(SCHEMA)
    assert leaves["features.*.extractor"]["enum"] == list(EXTRACTORS)
    assert leaves["features.*.backend"]["enum"] == list(CLAP_BACKENDS)
    generators = leaves["reconstruction.features.*.generators"]["items"]["enum"]
    assert sorted(generators) == sorted(options.GENERATORS) and sorted(leaves) == sorted(set(leaves))
    assert leaves["ridge.backend"]["enum"] == list(options.RIDGE_BACKENDS)  # the decoders': test_estimators.py


def test_registered_extractor_facts_match_their_classes():
    from b2m.features import extractor_class, required_weights

    for name, info in EXTRACTORS.items():
        assert extractor_class(name).input == info.input, name
        assert bool(required_weights(name, {})) == info.needs_weights, name


@pytest.mark.parametrize("config_file", CONFIGS)
def test_every_key_a_shipped_config_sets_shapes_something(config_file):
    """The key → rules table covers every key the shipped configs set: a key that shapes nothing is an error."""
    config = load(config_file)
    table = readers(Study(config))
    for key in config_leaves(config):
        assert key in table or any(fnmatch.fnmatch(key, pattern) for pattern in STRUCTURAL_KEYS), key


def other_value(key: str, value, schema: dict, config: dict):
    """A different valid value of a config key."""
    if key == "report.fold":
        return next(fold for fold in config["folds"] if fold != value)
    if key == "dataset.repetition_time":  # shorter: a TR above a window_s is refused
        return value / 2
    if key == "decoding.pooled.reference":  # a subject of the study
        return next(subject for subject in config["subjects"] if subject != value)
    if "enum" in schema:
        return next(v for v in schema["enum"] if v != value)
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, list):
        return list(reversed(value)) if len(value) > 1 else value + value[-1:]
    if isinstance(value, dict):
        return {**value, "extra": list(value.values())[0]}
    return f"{value}-changed"


def documents(study: Study) -> dict:
    return {(rule, tuple(sorted(names.items()))): job_document(study, rule, **names)
            for rule, names in job_kinds(study)}


def changed_option_keys(config: dict) -> dict:
    """Each option key a config sets (not a structural one) → the config with that key changed."""
    leaves, schema = config_leaves(config), schema_leaves(SCHEMA)
    changed = {}
    for key, value in leaves.items():
        if any(fnmatch.fnmatch(key, pattern) for pattern in STRUCTURAL_KEYS):
            continue
        pattern = next(p for p in schema if fnmatch.fnmatch(key, p))
        mutated = copy.deepcopy(config)
        *parents, last = key.split(".")
        node = mutated
        for part in parents:
            node = node[part]
        node[last] = other_value(key, value, schema[pattern], config)
        changed[key] = mutated
    return changed


@pytest.mark.parametrize("config_file", CONFIGS)
def test_a_changed_key_changes_the_options_of_exactly_its_readers(config_file):
    """For every option key of the shipped configs, changing it changes the options document of exactly the rules
    the study's table names: every rule with a field read from that key, and no rule outside the table (a rule
    that reads it only through a derived option changes where the derived value does). The Snakemake run of
    this is tests/test_provenance.py, on the demo."""
    config = load(config_file)
    study = Study(config)
    before, table = documents(study), readers(study)
    for key, mutated in changed_option_keys(config).items():
        after = documents(Study(mutated))
        rules = {rule for (rule, names), text in after.items() if before.get((rule, names)) != text}
        assert direct_readers(study, key) <= rules <= table[key], key


def direct_readers(study: Study, key: str) -> set[str]:
    """The rules with an option field read from ``key`` itself (not derived)."""
    found = set()
    for rule, names in job_kinds(study):
        for obj in options_of(study, rule, **names):
            keys = [f.metadata["key"] for f in dataclasses.fields(obj) if f.metadata["key"]]
            if key in {k.format(feature=names.get("feature", ""), generator=names.get("generator", "")) for k in keys}:
                found.add(rule)
    return found


@pytest.mark.parametrize("mutate, named", [
    (lambda c: c.update(folds=["test", "cv-7"]), "folds ['cv-7'] are not among cv-1 .. cv-4 (outer_folds = 4)"),
    (lambda c: c.update(folds=["test", "mood-sad"]), "folds ['mood-sad'] are neither test, cv-<k> nor <label>-"),
    (lambda c: c["design"].pop("test"), "folds hold test, but design.test names no test runs"),
    (lambda c: c["design"].pop("stimulus"), "features ['acoustic'] (and reconstruction) need each event's stimulus"),
    (lambda c: c["design"].update(labels=[]), "features ['genre'] one-hot code a label, but design.labels names none"),
    (lambda c: c["features"]["genre"].update(column="mood"), "label spaces name columns ['mood'] that are not in"),
    (lambda c: c["encoding"].update(banded=["acoustic"]), "encoding.banded ['acoustic'] must name two or more"),
    (lambda c: c["reconstruction"].update(folds=["cv-1"]), "reconstruction.folds ['cv-1'] are not among `folds`"),
    (lambda c: c["reconstruction"].update(features={"genre": {}}), "reconstruction.features ['genre'] must be audio"),
    (lambda c: c.update(subjects=["sub-009"]), "subjects ['sub-009'] are not simulated"),
    (lambda c: c["features"].update(mulan={"window_s": 10, "stride_s": 1.5}), "features ['mulan'] name no extractor"),
    (lambda c: c["dataset"].update(download={"enabled": True}), "simulate.enabled and dataset.download.enabled"),
    (lambda c: c["dataset"].update(input="fmriprep"), "dataset.fmriprep.root is not set"),
    (lambda c: c.update(report={"fold": "cv-1"}), "a fold (cv-1) that are not among"),
    (lambda c: c["decoding"].update(models=["contrastive"]), "leaves out whole-mask"),
    (lambda c: c["decoding"].update(models=["whole-mask", "pooled-aligned"], pooled={"reference": "sub-004"}),
     "decoding.pooled.reference 'sub-004' is not among `subjects`"),
    (lambda c: c["decoding"].update(pooled={"kshot_minutes": [0, 2]}), "it needs pooled-aligned in decoding.models"),
    (lambda c: c["reconstruction"].update(audio={"model": "contrastive"}), "name ['contrastive'], which decoding"),
    (lambda c: c["decoding"].update(voxel_selection={"by": "top", "candidates": [0.05, "all"]}),
     "decoding.voxel_selection.candidates [0.05, 'all'] with by: top take whole numbers ≥ 1 or all"),
    (lambda c: c["reconstruction"]["listening_test"].update(enabled=False), "listening_test.answers is set but"),
    (lambda c: c["reconstruction"].update(features={}), "listening_test.enabled needs reconstructions"),
    (lambda c: c["reconstruction"]["listening_test"].update(foils=["random", "mood-matched"]),
     "listening_test.foils ['mood-matched'] match on no label of design.labels ['genre']"),
])
def test_contradicting_keys_are_refused_naming_them(mutate, named):
    config = load("config/config.yaml")
    mutate(config)
    with pytest.raises(ConfigError, match=re.escape(named)):
        Study(config)


def results_names() -> tuple[set[str], set[str]]:
    """The file names and the folder names of the results tree, from the layout's folder classes."""
    classes = [*Folder.__subclasses__(), *(c for s in Folder.__subclasses__() for c in s.__subclasses__())]
    names = {prop.fget.file_name for cls in classes for prop in vars(cls).values()
             if isinstance(prop, property) and hasattr(prop.fget, "file_name")}
    files = {name for name in names if "." in name} | {"evaluation.parquet", "listening.html", ".benchmark.tsv",
                                                       "s-stride-"}
    folders = {name for name in names if "." not in name} | {"responses", "decoding", "encoding", "retrieval",
                                                             "generation", "reconstruction", "summary", "logs",
                                                             "fetched", "figures"}
    return files, folders


def test_the_layout_is_the_only_code_that_names_a_results_file():
    """No path literal of the results tree outside b2m/layout.py: no string literal without spaces in the package
    or the workflow holds a file name of the layout's folders or one of its folders as a path segment."""
    files, folders = results_names()
    assert {"scans.npy", "predictions.parquet", "test_repeats.npy", "vectors.npy", "generated.parquet"} <= files
    segment = re.compile(r"(^|/)(" + "|".join(sorted(folders)) + r")(/|$)")
    file = re.compile(r"(^|/|})(" + "|".join(map(re.escape, sorted(files))) + r")")

    def names_a_path(text: str) -> bool:
        if re.search(r"\s", text):
            return False
        return bool(file.search(text)) or "/" in text and bool(segment.search(text))

    paths = [*REPO.glob("b2m/**/*.py"), *REPO.glob("workflow/**/*.smk"), REPO / "Snakefile"]
    found = [f"{path.relative_to(REPO)}:{number}: {text}" for path in paths
             if path.name != "layout.py" and "simulate" not in path.parts
             for number, text in string_literals(path) if names_a_path(text)]
    assert found == []


def string_literals(path) -> list[tuple[int, str]]:
    """(line, text) of the string literals of a Python or Snakemake file, docstrings left out."""
    import ast
    import io
    import tokenize

    if path.suffix == ".py":
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
                      and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        return [(node.lineno, node.value) for node in ast.walk(tree) if isinstance(node, ast.Constant)
                and isinstance(node.value, str) and id(node) not in docstrings]
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    return [(token.start[0], token.string) for token in tokens
            if token.type == tokenize.STRING and not token.string.startswith(('"' * 3, "'" * 3))]


def test_option_choices_are_the_schema_enums():
    leaves = schema_leaves(SCHEMA)
    with_choices = [(f.metadata["key"], f.metadata["choices"]) for cls in option_classes()
                    for f in dataclasses.fields(cls) if f.metadata["choices"]]
    assert len(with_choices) >= 5
    for key, choices in with_choices:
        assert leaves[generic(key)]["enum"] == list(choices), key


def test_the_evaluation_reads_the_design_label_and_none_without_labels():
    """Class agreement is named after the design's first label column, which reaches evaluate-reconstruction as
    EvaluationOptions.label (derived from design.labels); a design without labels gives None."""
    from b2m.options import EvaluationOptions

    def label_of(config):
        found = options_of(Study(config), "evaluate_reconstruction", feature="acoustic")
        return next(obj for obj in found if isinstance(obj, EvaluationOptions)).label

    config = load("config/config.yaml")
    assert label_of(config) == "genre"
    config["design"]["labels"] = ["mood", "genre"]
    assert label_of(config) == "mood"
    config["design"]["labels"], config["folds"] = [], ["test"]
    del config["features"]["genre"], config["encoding"]["banded"]
    assert label_of(config) is None
    assert "evaluate_reconstruction" in readers(Study(load("config/config.yaml")))["design.labels"]


@pytest.mark.parametrize("folds, pooled", [(["test", "genre-rock"], ()), (["test", "cv-2"], ()),
                                           (["cv-1", "cv-2", "cv-3"], ("cv-1", "cv-2", "cv-3")),
                                           (["test", "cv-4", "cv-1", "genre-rock"], ("cv-4", "cv-1"))])
def test_fold_cv_all_is_encoded_exactly_where_two_cv_folds_are_pooled(folds, pooled):
    """encode (and encode_banded) jobs of fold cv-all exist exactly where `folds` hold two cv folds or more; their
    documents name the pooled folds (`pooling`), and no other encoding job's document has that section."""
    import json

    config = load("config/config.yaml")
    config.update(folds=folds)
    study = Study(config)
    cv_all = sorted(rule for rule, names in job_kinds(study) if names.get("fold") == "cv-all")
    assert cv_all == (["encode", "encode_banded"] if pooled else [])
    assert study.encoded_folds == folds + (["cv-all"] if pooled else [])
    for rule in ("encode", "encode_banded"):
        if pooled:
            document = json.loads(job_document(study, rule, feature="acoustic", fold="cv-all"))
            assert document["pooling"] == {"folds": list(pooled)}
        assert all("pooling" not in json.loads(job_document(study, rule, feature="acoustic", fold=fold))
                   for fold in folds)
