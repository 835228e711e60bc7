"""Every example in the OpenAPI document is valid against the schema it stands in: the
component schemas' own, and those of their properties, at any depth (formats checked).

Usage: python examples.py docs/openapi.json
"""

import json
import sys

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource


def walk(schema, pointer):
    """(pointer, schema) of this schema and every schema nested in it."""
    yield pointer, schema
    if not isinstance(schema, dict):
        return
    for key in ("properties", "patternProperties", "$defs"):
        for name, sub in schema.get(key, {}).items():
            yield from walk(sub, f"{pointer}/{key}/{name.replace('~', '~0').replace('/', '~1')}")
    for key in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(key), dict):
            yield from walk(schema[key], f"{pointer}/{key}")
    for key in ("allOf", "anyOf", "oneOf", "prefixItems"):
        for i, sub in enumerate(schema.get(key, [])):
            yield from walk(sub, f"{pointer}/{key}/{i}")


def main(path):
    doc = json.load(open(path))
    registry = Registry().with_resource("urn:doc", Resource.opaque(doc))
    failures = []
    checked = 0
    for name, component in doc.get("components", {}).get("schemas", {}).items():
        for pointer, schema in walk(component, f"/components/schemas/{name}"):
            if not isinstance(schema, dict):
                continue
            examples = list(schema.get("examples", []))
            if "example" in schema:
                examples.append(schema["example"])
            if not examples:
                continue
            validator = Draft202012Validator(
                {"$ref": "urn:doc#" + pointer}, registry=registry, format_checker=FormatChecker()
            )
            for example in examples:
                checked += 1
                for error in validator.iter_errors(example):
                    failures.append(f"{pointer}: {error.json_path}: {error.message}")
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    if checked == 0:
        print("no example found: nothing was checked")
        sys.exit(1)
    print(f"{checked} examples valid")


if __name__ == "__main__":
    main(sys.argv[1])
