"""A misspelt key in any section of any config in configs/ is refused at load time, naming the key
and suggesting the right one (pydantic's extra="forbid" + difflib in graphonc.validation)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from graphonc.config import GraphConfig, load_config
from graphonc.errors import ConfigError
from graphonc.radiomics_config import load_params

from conftest import CONFIGS

#: Mappings whose keys are data, not settings: names of things (aliases, endpoints, column renames)
#: or blocks another validator owns (pyradiomics checks its own settings when the extractor is built).
FREE_FORM = {("genes", "aliases"), ("clinical", "extra_survival"), ("radiomics", "features", "columns"),
             ("clinical", "ordinal"), ("clinical", "units")}  # units: keys are column names (own check below)
#: Value maps (``label.map``, ``ordinal.<column>.map``): their keys are data values.
FREE_FORM_LAST = ("map",)
#: Whole blocks another validator owns: pyradiomics checks its settings when the extractor is built.
NOT_OURS = ("pyradiomics",)


def misspell(key: str) -> str:
    """A typo a person makes: a letter dropped from the middle (a doubled letter for short keys)."""
    return key[:len(key) // 2] + key[len(key) // 2 + 1:] if len(key) > 4 else key + key[-1]


def mappings(node, loc=()):
    """Every (location, mapping) in a parsed YAML document whose keys are settings."""
    if loc[:1] == NOT_OURS:
        return
    if isinstance(node, dict):
        if node and loc not in FREE_FORM and loc[-1:] != FREE_FORM_LAST:
            yield loc, node
        for k, v in node.items():
            yield from mappings(v, (*loc, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from mappings(v, (*loc, i))


def _cases():
    for path in sorted(CONFIGS.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        for loc, mapping in mappings(raw):
            key = next(iter(mapping))
            yield pytest.param(path, loc, key, id=f"{path.stem}:{'.'.join(map(str, (*loc, key)))}")


def _load(path: Path):
    """A cohort config (load_config) or the radiomics params file (load_params), by file name."""
    return load_params(path) if path.name == "radiomics.yaml" else load_config(path)


def _with_typo(raw: dict, loc: tuple, key: str) -> dict:
    node = raw
    for part in loc:
        node = node[part]
    node[misspell(key)] = node.pop(key)
    return raw


@pytest.mark.parametrize(("path", "loc", "key"), list(_cases()))
def test_a_typo_in_every_section_is_refused_with_the_right_key_suggested(path, loc, key, tmp_path):
    raw = _with_typo(yaml.safe_load(path.read_text(encoding="utf-8")), loc, key)
    bad = tmp_path / path.name  # beside nothing: relative input paths need not resolve to fail on the key
    bad.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        _load(bad)
    msg = str(err.value)
    # the key as the user wrote it, dotted (list positions as numbers), and the valid key it meant
    shown = ".".join(map(str, (*loc, misspell(key))))
    assert f"key '{shown}': unknown key" in msg, msg
    assert f"Did you mean '{key}'?" in msg, msg
    assert msg.startswith(str(bad)) and "\n" not in msg


def test_every_config_loads_as_it_is():
    for path in sorted(CONFIGS.glob("*.yaml")):
        _load(path)


def test_the_sections_typed_and_walked_cover_every_top_level_key():
    """Each top-level key of the cohort configs is a typed section or a scalar (so the typo test reaches it)."""
    seen = set()
    for path in sorted(CONFIGS.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        if path.name != "radiomics.yaml":
            seen |= set(raw)
    assert seen <= set(GraphConfig.model_fields), seen - set(GraphConfig.model_fields)


def test_a_discriminated_input_shows_the_path_as_written(tmp_path):
    raw = yaml.safe_load((CONFIGS / "metabric.yaml").read_text(encoding="utf-8"))
    raw["input"]["study_dri"] = raw["input"].pop("study_dir")
    bad = tmp_path / "metabric.yaml"
    bad.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"key 'input\.study_dri': unknown key.*Did you mean 'study_dir'\?"):
        load_config(bad)


def test_search_section_is_typed_and_feeds_the_index_defaults(tmp_path):
    from graphonc.search.index import index_settings

    raw = yaml.safe_load((CONFIGS / "metabric.yaml").read_text(encoding="utf-8"))
    raw["search"] = {"kind": "hnsw", "ef_search": 64}
    good = tmp_path / "ok.yaml"
    good.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert load_config(good).search.ef_search == 64
    raw["search"] = {"kind": "hnws"}
    good.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"key 'search\.kind'"):
        load_config(good)
    # the run keeps its config verbatim: `graphonc index` takes its defaults from there, options win
    root = tmp_path / "run"
    root.mkdir()
    (root / "config.yaml").write_text("search: {kind: hnsw, ef_search: 64, nprobe: 4}\n", encoding="utf-8")
    kind, device, params = index_settings(root, ef_search=200)
    assert (kind, device, params.ef_search, params.nprobe, params.hnsw_m) == ("hnsw", "auto", 200, 4, 32)
    (root / "config.yaml").write_text("search: {nprobes: 4}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"key 'search\.nprobes': unknown key.*Did you mean 'nprobe'\?"):
        index_settings(root)


def test_units_name_numeric_columns_and_a_typo_is_refused_with_the_column_suggested(tmp_path):
    raw = yaml.safe_load((CONFIGS / "metabric.yaml").read_text(encoding="utf-8"))
    assert load_config(CONFIGS / "metabric.yaml").clinical.units == {"AGE_AT_DIAGNOSIS": "years", "TUMOR_SIZE": "mm"}
    bad = tmp_path / "metabric.yaml"
    for units, expected in (({"ER_IHC": "years"}, "units names 'ER_IHC', which is not a numeric column"),
                            ({"TUMOR_SIZE": "<b>mm</b>"}, "units.TUMOR_SIZE: '<b>mm</b>' is not a unit")):
        raw["clinical"]["units"] = units
        bad.write_text(yaml.safe_dump(raw), encoding="utf-8")
        with pytest.raises(ConfigError, match=r"key 'clinical'.*" + expected) as err:
            load_config(bad)
        assert str(err.value).startswith(str(bad)) and "\n" not in str(err.value)
    # a key close to a numeric column: a typo in units or in clinical.numeric; the data decides at build
    from graphonc.graph.build import build_graph

    raw["clinical"]["units"] = {"AGE_AT_DIGNOSIS": "years"}
    text = yaml.safe_dump(raw).replace("../../shared", str((CONFIGS / "../../shared").resolve()))
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="clinical.units names 'AGE_AT_DIGNOSIS'.*did you mean 'AGE_AT_DIAGNOSIS'"):
        build_graph(load_config(bad))
    raw["clinical"]["unit"] = raw["clinical"].pop("units")   # the section's own key misspelt
    bad.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"key 'clinical\.unit': unknown key.*Did you mean 'units'\?"):
        load_config(bad)
