"""Release in the FERV39k layout: build, check, exports (DFER lists, Hugging Face, WebDataset) and rebuild."""

from pipeline.release.build import ReleaseError, ReleaseSummary, build_release
from pipeline.release.check import check_release
from pipeline.release.export_lists import export_lists
from pipeline.release.exports import FORMATS, export_release
from pipeline.release.rebuild import RebuildSummary, rebuild_release
from pipeline.release.split import SplitError

__all__ = ["FORMATS", "RebuildSummary", "ReleaseError", "ReleaseSummary", "SplitError", "build_release",
           "check_release", "export_lists", "export_release", "rebuild_release"]
