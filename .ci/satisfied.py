"""Exit 0 if featwidget is installed (editable) from this checkout and every requirement of pyproject.toml --
plus those of the extras named on the command line -- is installed in a satisfying version; else exit 1.

Used by .ci/install to skip a slow no-op `pip install -e .`; any doubt means "not satisfied" (reinstall).
"""
import importlib.metadata as md
import json
import os
import sys

try:
    import tomllib
    from packaging.requirements import Requirement
except ImportError:  # Python 3.10 or no packaging module: let pip decide
    sys.exit(1)


def installed_here() -> bool:
    try:
        dist = md.distribution("featwidget")
    except md.PackageNotFoundError:
        return False
    url = json.loads(dist.read_text("direct_url.json") or "{}")
    here = "file://" + os.path.realpath(os.getcwd())
    return url.get("url") == here and url.get("dir_info", {}).get("editable", False)


def satisfied(requirement: str, extras: set) -> bool:
    req = Requirement(requirement)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        return True
    try:
        version = md.version(req.name)
    except md.PackageNotFoundError:
        return False
    return req.specifier.contains(version, prereleases=True)


def main() -> int:
    with open("pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    extras = set(sys.argv[1:])
    wanted = list(project.get("dependencies", []))
    for extra in extras:
        wanted += project.get("optional-dependencies", {}).get(extra, [])
    if not installed_here() or md.version("featwidget") != project["version"]:
        return 1
    scripts = {ep.name: ep.value for ep in md.distribution("featwidget").entry_points
               if ep.group == "console_scripts"}
    if scripts != project.get("scripts", {}):
        return 1
    return 0 if all(satisfied(r, extras) for r in wanted) else 1


if __name__ == "__main__":
    sys.exit(main())
