"""Sync state behind small interfaces (``ports``), stored in DynamoDB (``dynamodb``) or in memory (``memory``)."""

from ml_connector.state.models import (
    JobRecord,
    PollRun,
    QuarantineEntry,
    QuarantineMark,
    RecordState,
    RepairEntry,
    RunRecord,
    WatermarkEntry,
    WindowCheckpoint,
    WriteRecorded,
    WrittenRecord,
    parse_utc_iso,
    utc_iso,
)
from ml_connector.state.ports import State

__all__ = ["JobRecord", "PollRun", "QuarantineEntry", "QuarantineMark", "RecordState", "RepairEntry", "RunRecord",
           "State",
           "WatermarkEntry", "WindowCheckpoint", "WriteRecorded", "WrittenRecord", "parse_utc_iso", "utc_iso"]
