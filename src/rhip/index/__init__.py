"""rhip.index — the composite-index engine (卫生健康信息化发展指数引擎).

Stands apart from the platform: only numeric and file-format libraries. Build an index from a
framework (COINr `iMeta` or YAML) and unit data (COINr `iData`), with a pipeline of named steps:

>>> from rhip.index import read_framework, read_data, run  # doctest: +SKIP
>>> fw = read_framework("ASEM_iMeta.csv"); data = read_data("ASEM_iData.csv", fw)  # doctest: +SKIP
>>> result = run(fw, data, "pipeline.yaml"); result.table().head()  # doctest: +SKIP
"""

from rhip.index.errors import IndexInputError, IndexMethodError
from rhip.index.framework import Framework, Node
from rhip.index.io import Dataset, read_data, read_framework
from rhip.index.pipeline import Pipeline, StepSpec, regen, run
from rhip.index.results import IndexResult

__all__ = [
    "Dataset",
    "Framework",
    "IndexInputError",
    "IndexMethodError",
    "IndexResult",
    "Node",
    "Pipeline",
    "StepSpec",
    "read_data",
    "read_framework",
    "regen",
    "run",
]
