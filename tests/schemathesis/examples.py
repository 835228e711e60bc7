"""Every example in the OpenAPI document is valid against its own schema.

Usage: python examples.py docs/openapi.json
"""

import json
import sys

from jsonschema import Draft202012Validator
from referencing import Registry, Resource


def main(path):
    doc = json.load(open(path))
    registry = Registry().with_resource("urn:doc", Resource.opaque(doc))
    failures = []
    checked = 0
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        examples = list(schema.get("examples", []))
        if "example" in schema:
            examples.append(schema["example"])
        wrapped = {"$ref": "urn:doc#/components/schemas/" + name}
        validator = Draft202012Validator(wrapped, registry=registry)
        for example in examples:
            checked += 1
            for error in validator.iter_errors(example):
                failures.append(f"{name}: {error.json_path}: {error.message}")
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    print(f"{checked} examples valid")


if __name__ == "__main__":
    main(sys.argv[1])
