"""Release in the FERV39k layout: build, check, derived lists and rebuild from metadata."""

from pipeline.release.build import ReleaseError, ReleaseSummary, build_release
from pipeline.release.check import check_release
from pipeline.release.export_lists import FORMATS, export_lists
from pipeline.release.rebuild import RebuildSummary, rebuild_release

__all__ = ["FORMATS", "RebuildSummary", "ReleaseError", "ReleaseSummary", "build_release", "check_release", "export_lists",
           "rebuild_release"]
