"""Messages captured from NATS are what docs/asyncapi.yaml says: each subject matches a
channel (its parameters' schemas included), every header is documented, the documented
required headers are there and valid, and a JSON payload validates against its schema.

Usage: python check_messages.py docs/asyncapi.yaml PREFIX messages.json
messages.json: [{"subject": "...", "headers": {"Name": "value"}, "payload": "..."}]
The document's subjects start with `showpass`; PREFIX is the prefix the messages used.
"""

import json
import re
import sys

import yaml
from jsonschema import Draft7Validator, FormatChecker
from referencing import Registry, Resource


def resolve(doc, node):
    while isinstance(node, dict) and "$ref" in node:
        path = node["$ref"].lstrip("#/").split("/")
        node = doc
        for part in path:
            node = node[part]
    return node


def parts(doc, schema):
    """A schema and the schemas of its allOf, resolved."""
    schema = resolve(doc, schema)
    out = [schema]
    for sub in schema.get("allOf", []):
        out.extend(parts(doc, sub))
    return out


def channel_of(doc, prefix, subject):
    for name, channel in doc["channels"].items():
        template = name.replace("showpass", prefix, 1)
        params = re.findall(r"\{(\w+)\}", template)
        pattern = "^" + re.sub(r"\\\{\w+\\\}", "([^.]+)", re.escape(template)) + "$"
        m = re.match(pattern, subject)
        if m:
            return name, channel, dict(zip(params, m.groups()))
    return None, None, None


def main(asyncapi, prefix, messages):
    doc = yaml.safe_load(open(asyncapi))
    registry = Registry().with_resource("urn:doc", Resource.opaque(doc))
    failures = []
    for msg in json.load(open(messages)):
        subject = msg["subject"]
        name, channel, values = channel_of(doc, prefix, subject)
        if channel is None:
            failures.append(f"{subject}: no channel of the document matches")
            continue
        for param, value in values.items():
            schema = channel.get("parameters", {}).get(param, {}).get("schema", {})
            for e in Draft7Validator(schema).iter_errors(value):
                failures.append(f"{subject}: parameter {param}: {e.message}")
        operation = channel.get("subscribe") or channel.get("publish")
        message = resolve(doc, operation["message"])
        header_parts = parts(doc, message.get("headers", {}))
        documented = set()
        required = set()
        for p in header_parts:
            documented |= set(p.get("properties", {}))
            required |= set(p.get("required", []))
        headers = msg["headers"]
        for h in sorted(set(headers) - documented):
            failures.append(f"{subject}: header {h} is not documented")
        for h in sorted(required - set(headers)):
            failures.append(f"{subject}: required header {h} is missing")
        for p in header_parts:
            plain = {k: v for k, v in p.items() if k != "allOf"}
            for e in Draft7Validator(plain, format_checker=FormatChecker()).iter_errors(headers):
                failures.append(f"{subject}: headers: {e.message}")
        payload_schema = resolve(doc, message.get("payload", {}))
        if payload_schema.get("type") != "string":
            try:
                payload = json.loads(msg["payload"])
            except ValueError as e:
                failures.append(f"{subject}: the payload is not JSON: {e}")
                continue
            wrapped = {"$ref": "urn:doc#" + message["payload"]["$ref"].lstrip("#")} if "$ref" in message.get("payload", {}) else payload_schema
            validator = Draft7Validator(wrapped, registry=registry, format_checker=FormatChecker())
            for e in validator.iter_errors(payload):
                failures.append(f"{subject}: payload {e.json_path}: {e.message}")
        print(f"{subject}: {name}")
    if failures:
        print("\n".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main(*sys.argv[1:4])
