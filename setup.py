"""Maps the top-level folders onto the ``klamm`` namespace (broker/ -> klamm.broker, ...).

pyproject.toml holds all metadata; this file only computes the package list, which
pyproject.toml cannot express for a package-dir mapping with nested packages.
"""

from setuptools import find_packages, setup

TOP_LEVEL = ("broker", "client", "protocol", "zk")

packages = []
package_dir = {}
for top in TOP_LEVEL:
    package_dir[f"klamm.{top}"] = top
    packages.append(f"klamm.{top}")
    packages.extend(f"klamm.{top}.{sub}" for sub in find_packages(top))

setup(packages=packages, package_dir=package_dir)
