"""The typed error-code table shared by broker, clients and the coordination service.

Every code carries whether a client may retry it and a hint that tells the user what to
do. Clients raise the exception class mapped one-to-one from the code (``error_for``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from enum import IntEnum


class ErrorCode(IntEnum):
    NONE = 0
    UNKNOWN_SERVER_ERROR = -1
    OFFSET_OUT_OF_RANGE = 1
    CORRUPT_MESSAGE = 2
    UNKNOWN_TOPIC_OR_PARTITION = 3
    LEADER_NOT_AVAILABLE = 5
    NOT_LEADER_OR_FOLLOWER = 6
    REQUEST_TIMED_OUT = 7
    MESSAGE_TOO_LARGE = 10
    STALE_CONTROLLER_EPOCH = 11
    COORDINATOR_NOT_AVAILABLE = 15
    NOT_COORDINATOR = 16
    INVALID_TOPIC = 17
    RECORD_LIST_TOO_LARGE = 18
    NOT_ENOUGH_REPLICAS = 19
    NOT_ENOUGH_REPLICAS_AFTER_APPEND = 20
    ILLEGAL_GENERATION = 22
    UNKNOWN_MEMBER_ID = 25
    REBALANCE_IN_PROGRESS = 27
    TOPIC_AUTHORIZATION_FAILED = 29
    GROUP_AUTHORIZATION_FAILED = 30
    CLUSTER_AUTHORIZATION_FAILED = 31
    INVALID_TIMESTAMP = 32
    UNSUPPORTED_VERSION = 35
    TOPIC_ALREADY_EXISTS = 36
    INVALID_PARTITIONS = 37
    INVALID_REPLICATION_FACTOR = 38
    INVALID_REPLICA_ASSIGNMENT = 39
    INVALID_REQUEST = 42
    INVALID_CONFIG = 40
    NOT_CONTROLLER = 41
    OUT_OF_ORDER_SEQUENCE = 45
    DUPLICATE_SEQUENCE = 46
    STORAGE_ERROR = 56
    REASSIGNMENT_IN_PROGRESS = 60
    SASL_AUTHENTICATION_FAILED = 58
    TOPIC_DELETION_DISABLED = 73
    FENCED_LEADER_EPOCH = 74
    UNKNOWN_LEADER_EPOCH = 76
    STALE_BROKER_EPOCH = 77
    INVALID_RECORD = 87
    PREFERRED_LEADER_NOT_AVAILABLE = 80
    ELIGIBLE_LEADERS_NOT_AVAILABLE = 83
    ELECTION_NOT_NEEDED = 84
    INVALID_UPDATE_VERSION = 95
    INELIGIBLE_REPLICA = 107
    UNKNOWN_API = 1001
    BROKER_SHUTTING_DOWN = 1002


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    retriable: bool
    hint: str


ERRORS: dict[ErrorCode, ErrorInfo] = {
    ErrorCode.NONE: ErrorInfo(False, "no error"),
    ErrorCode.UNKNOWN_SERVER_ERROR: ErrorInfo(
        False, "the broker hit an unexpected error; check the broker log"),
    ErrorCode.OFFSET_OUT_OF_RANGE: ErrorInfo(
        False, "the requested offset is outside the log; seek to a valid offset or set "
               "auto.offset.reset to earliest or latest"),
    ErrorCode.CORRUPT_MESSAGE: ErrorInfo(
        True, "a record batch failed its CRC or size check; it was not stored"),
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: ErrorInfo(
        True, "the topic or partition does not exist; create it first "
              "(klamm topics create NAME --partitions N)"),
    ErrorCode.LEADER_NOT_AVAILABLE: ErrorInfo(
        True, "the partition has no leader right now; retry after a metadata refresh"),
    ErrorCode.NOT_LEADER_OR_FOLLOWER: ErrorInfo(
        True, "this broker does not lead the partition; refresh metadata and retry"),
    ErrorCode.REQUEST_TIMED_OUT: ErrorInfo(
        True, "the request timed out on the broker; retry or raise request.timeout.ms"),
    ErrorCode.INVALID_TIMESTAMP: ErrorInfo(
        False, "a record's timestamp is further from the broker's clock than the topic's "
               "message.timestamp.difference.max.ms allows; fix the producer's clock or "
               "timestamps"),
    ErrorCode.INVALID_RECORD: ErrorInfo(
        False, "the broker refused a record batch that does not match its header or the "
               "topic's rules; nothing of it was stored"),
    ErrorCode.MESSAGE_TOO_LARGE: ErrorInfo(
        False, "a record batch exceeds the topic's max.message.bytes; send smaller "
               "records or raise max.message.bytes on the topic"),
    ErrorCode.STALE_CONTROLLER_EPOCH: ErrorInfo(
        False, "the request came from a controller that has been replaced; it was ignored"),
    ErrorCode.COORDINATOR_NOT_AVAILABLE: ErrorInfo(
        True, "the group coordinator is not available yet; retry"),
    ErrorCode.NOT_COORDINATOR: ErrorInfo(
        True, "this broker is not the group's coordinator; find the coordinator and retry"),
    ErrorCode.INVALID_TOPIC: ErrorInfo(
        False, "topic names are 1-249 characters of [a-zA-Z0-9._-]"),
    ErrorCode.RECORD_LIST_TOO_LARGE: ErrorInfo(
        False, "the request is larger than the broker accepts; lower max.request.size "
               "or batch.size on the producer"),
    ErrorCode.NOT_ENOUGH_REPLICAS: ErrorInfo(
        True, "fewer in-sync replicas than min.insync.replicas; the write was refused"),
    ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND: ErrorInfo(
        True, "the write was stored by the leader but the in-sync replicas shrank below "
              "min.insync.replicas before it was acknowledged"),
    ErrorCode.ILLEGAL_GENERATION: ErrorInfo(
        False, "the group rebalanced; rejoin the group"),
    ErrorCode.UNKNOWN_MEMBER_ID: ErrorInfo(
        False, "the group no longer knows this member; rejoin the group"),
    ErrorCode.REBALANCE_IN_PROGRESS: ErrorInfo(
        False, "the group is rebalancing; rejoin the group"),
    ErrorCode.TOPIC_AUTHORIZATION_FAILED: ErrorInfo(
        False, "not authorized to access the topic"),
    ErrorCode.GROUP_AUTHORIZATION_FAILED: ErrorInfo(
        False, "not authorized to access the group"),
    ErrorCode.CLUSTER_AUTHORIZATION_FAILED: ErrorInfo(
        False, "only the cluster's brokers may send this request, on a connection that "
               "proved it belongs to one (inter-broker authentication)"),
    ErrorCode.UNSUPPORTED_VERSION: ErrorInfo(
        False, "the broker does not support this request version; upgrade the broker or "
               "use an older client"),
    ErrorCode.TOPIC_ALREADY_EXISTS: ErrorInfo(
        False, "a topic with this name already exists"),
    ErrorCode.INVALID_PARTITIONS: ErrorInfo(
        False, "the partition count is invalid (at least 1 for a new topic, above the "
               "current count when adding partitions); the message says which"),
    ErrorCode.INVALID_REPLICATION_FACTOR: ErrorInfo(
        False, "the replication factor must be between 1 and the number of live brokers"),
    ErrorCode.INVALID_REPLICA_ASSIGNMENT: ErrorInfo(
        False, "a replica assignment names an unknown broker, a broker twice, or partitions "
               "of different sizes; the message says which"),
    ErrorCode.NOT_CONTROLLER: ErrorInfo(
        True, "this broker is not the controller; find the controller and retry"),
    ErrorCode.INVALID_REQUEST: ErrorInfo(
        False, "the request was malformed; this is a client bug or a version mismatch"),
    ErrorCode.INVALID_CONFIG: ErrorInfo(
        False, "a configuration key or value is invalid; the message names it"),
    ErrorCode.OUT_OF_ORDER_SEQUENCE: ErrorInfo(
        False, "the broker received a producer sequence number out of order"),
    ErrorCode.DUPLICATE_SEQUENCE: ErrorInfo(
        False, "the broker already stored a batch with this producer sequence"),
    ErrorCode.STORAGE_ERROR: ErrorInfo(
        True, "the broker could not write to its disk (full or failing); nothing was "
              "stored; free disk space on the broker"),
    ErrorCode.REASSIGNMENT_IN_PROGRESS: ErrorInfo(
        False, "the partition is being moved already; wait until that move is done"),
    ErrorCode.SASL_AUTHENTICATION_FAILED: ErrorInfo(
        False, "authentication failed; check the credentials"),
    ErrorCode.TOPIC_DELETION_DISABLED: ErrorInfo(
        False, "topic deletion is disabled on the brokers (delete.topic.enable=false)"),
    ErrorCode.FENCED_LEADER_EPOCH: ErrorInfo(
        True, "the leader epoch in the request is older than the broker's; refresh metadata"),
    ErrorCode.UNKNOWN_LEADER_EPOCH: ErrorInfo(
        True, "the leader epoch in the request is newer than the broker's; it has not heard "
              "of the new leader yet: retry"),
    ErrorCode.STALE_BROKER_EPOCH: ErrorInfo(
        False, "the request names an earlier incarnation of the broker; it was ignored"),
    ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE: ErrorInfo(
        True, "the preferred replica is not live or not in sync; retry once it has caught "
              "up"),
    ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE: ErrorInfo(
        True, "no replica of the partition is live; start one of its brokers"),
    ErrorCode.ELECTION_NOT_NEEDED: ErrorInfo(
        False, "the partition already has the leader the election would choose"),
    ErrorCode.INVALID_UPDATE_VERSION: ErrorInfo(
        True, "the partition changed since the request's partition epoch; refresh and retry"),
    ErrorCode.INELIGIBLE_REPLICA: ErrorInfo(
        False, "an ISR change named a replica that is not live or is shutting down"),
    ErrorCode.UNKNOWN_API: ErrorInfo(
        False, "the broker does not know this api key; upgrade the broker"),
    ErrorCode.BROKER_SHUTTING_DOWN: ErrorInfo(
        True, "the broker is shutting down; retry against another broker or after restart"),
}


class KlammError(Exception):
    """Base of every error a Klamm client raises for a broker error code."""

    code: ErrorCode = ErrorCode.UNKNOWN_SERVER_ERROR
    retriable: bool = False

    def __init__(self, message: str | None = None) -> None:
        info = ERRORS[self.code]
        text = f"{self.code.name}: {info.hint}"
        if message:
            text = f"{text} ({message})"
        super().__init__(text)
        self.detail = message


class UnknownServerError(KlammError):
    code = ErrorCode.UNKNOWN_SERVER_ERROR
    retriable = False


class OffsetOutOfRangeError(KlammError):
    """``partitions``: each partition whose position was out of range, with that position
    (Kafka's offsetOutOfRangePartitions); empty when the broker's answer named none."""

    code = ErrorCode.OFFSET_OUT_OF_RANGE
    retriable = False

    def __init__(self, message: str | None = None,
                 partitions: Mapping[Any, int] | None = None) -> None:
        super().__init__(message)
        self.partitions: dict[Any, int] = dict(partitions or {})


class CorruptMessageError(KlammError):
    code = ErrorCode.CORRUPT_MESSAGE
    retriable = True


class UnknownTopicOrPartitionError(KlammError):
    code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    retriable = True


class LeaderNotAvailableError(KlammError):
    code = ErrorCode.LEADER_NOT_AVAILABLE
    retriable = True


class NotLeaderOrFollowerError(KlammError):
    code = ErrorCode.NOT_LEADER_OR_FOLLOWER
    retriable = True


class RequestTimedOutError(KlammError):
    code = ErrorCode.REQUEST_TIMED_OUT
    retriable = True


class MessageTooLargeError(KlammError):
    code = ErrorCode.MESSAGE_TOO_LARGE
    retriable = False


class InvalidTimestampError(KlammError):
    code = ErrorCode.INVALID_TIMESTAMP
    retriable = False


class InvalidRecordError(KlammError):
    code = ErrorCode.INVALID_RECORD
    retriable = False


class StaleControllerEpochError(KlammError):
    code = ErrorCode.STALE_CONTROLLER_EPOCH
    retriable = False


class CoordinatorNotAvailableError(KlammError):
    code = ErrorCode.COORDINATOR_NOT_AVAILABLE
    retriable = True


class NotCoordinatorError(KlammError):
    code = ErrorCode.NOT_COORDINATOR
    retriable = True


class InvalidTopicError(KlammError):
    code = ErrorCode.INVALID_TOPIC
    retriable = False


class RecordListTooLargeError(KlammError):
    code = ErrorCode.RECORD_LIST_TOO_LARGE
    retriable = False


class NotEnoughReplicasError(KlammError):
    code = ErrorCode.NOT_ENOUGH_REPLICAS
    retriable = True


class NotEnoughReplicasAfterAppendError(KlammError):
    code = ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
    retriable = True


class IllegalGenerationError(KlammError):
    code = ErrorCode.ILLEGAL_GENERATION
    retriable = False


class UnknownMemberIdError(KlammError):
    code = ErrorCode.UNKNOWN_MEMBER_ID
    retriable = False


class RebalanceInProgressError(KlammError):
    code = ErrorCode.REBALANCE_IN_PROGRESS
    retriable = False


class TopicAuthorizationFailedError(KlammError):
    code = ErrorCode.TOPIC_AUTHORIZATION_FAILED
    retriable = False


class GroupAuthorizationFailedError(KlammError):
    code = ErrorCode.GROUP_AUTHORIZATION_FAILED
    retriable = False


class ClusterAuthorizationFailedError(KlammError):
    code = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    retriable = False


class UnsupportedVersionError(KlammError):
    code = ErrorCode.UNSUPPORTED_VERSION
    retriable = False


class TopicAlreadyExistsError(KlammError):
    code = ErrorCode.TOPIC_ALREADY_EXISTS
    retriable = False


class InvalidPartitionsError(KlammError):
    code = ErrorCode.INVALID_PARTITIONS
    retriable = False


class InvalidReplicationFactorError(KlammError):
    code = ErrorCode.INVALID_REPLICATION_FACTOR
    retriable = False


class InvalidReplicaAssignmentError(KlammError):
    code = ErrorCode.INVALID_REPLICA_ASSIGNMENT
    retriable = False


class InvalidRequestError(KlammError):
    code = ErrorCode.INVALID_REQUEST
    retriable = False


class InvalidConfigError(KlammError):
    code = ErrorCode.INVALID_CONFIG
    retriable = False


class NotControllerError(KlammError):
    code = ErrorCode.NOT_CONTROLLER
    retriable = True


class OutOfOrderSequenceError(KlammError):
    code = ErrorCode.OUT_OF_ORDER_SEQUENCE
    retriable = False


class DuplicateSequenceError(KlammError):
    code = ErrorCode.DUPLICATE_SEQUENCE
    retriable = False


class StorageError(KlammError):
    code = ErrorCode.STORAGE_ERROR
    retriable = True


class SaslAuthenticationFailedError(KlammError):
    code = ErrorCode.SASL_AUTHENTICATION_FAILED
    retriable = False


class TopicDeletionDisabledError(KlammError):
    code = ErrorCode.TOPIC_DELETION_DISABLED
    retriable = False


class FencedLeaderEpochError(KlammError):
    code = ErrorCode.FENCED_LEADER_EPOCH
    retriable = True


class UnknownLeaderEpochError(KlammError):
    code = ErrorCode.UNKNOWN_LEADER_EPOCH
    retriable = True


class StaleBrokerEpochError(KlammError):
    code = ErrorCode.STALE_BROKER_EPOCH
    retriable = False


class ReassignmentInProgressError(KlammError):
    code = ErrorCode.REASSIGNMENT_IN_PROGRESS
    retriable = False


class PreferredLeaderNotAvailableError(KlammError):
    code = ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE
    retriable = True


class EligibleLeadersNotAvailableError(KlammError):
    code = ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE
    retriable = True


class ElectionNotNeededError(KlammError):
    code = ErrorCode.ELECTION_NOT_NEEDED
    retriable = False


class InvalidUpdateVersionError(KlammError):
    code = ErrorCode.INVALID_UPDATE_VERSION
    retriable = True


class IneligibleReplicaError(KlammError):
    code = ErrorCode.INELIGIBLE_REPLICA
    retriable = False


class UnknownApiError(KlammError):
    code = ErrorCode.UNKNOWN_API
    retriable = False


class BrokerShuttingDownError(KlammError):
    code = ErrorCode.BROKER_SHUTTING_DOWN
    retriable = True


ERROR_CLASSES: dict[int, type[KlammError]] = {int(cls.code): cls for cls in (
    UnknownServerError,
    OffsetOutOfRangeError,
    CorruptMessageError,
    UnknownTopicOrPartitionError,
    LeaderNotAvailableError,
    NotLeaderOrFollowerError,
    RequestTimedOutError,
    MessageTooLargeError,
    InvalidTimestampError,
    InvalidRecordError,
    StaleControllerEpochError,
    CoordinatorNotAvailableError,
    NotCoordinatorError,
    InvalidTopicError,
    RecordListTooLargeError,
    NotEnoughReplicasError,
    NotEnoughReplicasAfterAppendError,
    IllegalGenerationError,
    UnknownMemberIdError,
    RebalanceInProgressError,
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    UnsupportedVersionError,
    TopicAlreadyExistsError,
    InvalidPartitionsError,
    InvalidReplicationFactorError,
    InvalidReplicaAssignmentError,
    InvalidRequestError,
    InvalidConfigError,
    NotControllerError,
    OutOfOrderSequenceError,
    DuplicateSequenceError,
    StorageError,
    SaslAuthenticationFailedError,
    TopicDeletionDisabledError,
    FencedLeaderEpochError,
    UnknownLeaderEpochError,
    StaleBrokerEpochError,
    ReassignmentInProgressError,
    PreferredLeaderNotAvailableError,
    EligibleLeadersNotAvailableError,
    ElectionNotNeededError,
    InvalidUpdateVersionError,
    IneligibleReplicaError,
    UnknownApiError,
    BrokerShuttingDownError,
)}


def error_for(code: int, message: str | None = None) -> KlammError:
    """The exception instance for a wire error code (unknown codes map to UNKNOWN_SERVER_ERROR)."""
    cls = ERROR_CLASSES.get(code, UnknownServerError)
    if cls.code is ErrorCode.UNKNOWN_SERVER_ERROR and code != ErrorCode.UNKNOWN_SERVER_ERROR:
        message = f"error code {code}" + (f": {message}" if message else "")
    return cls(message)


def is_retriable(code: int) -> bool:
    try:
        return ERRORS[ErrorCode(code)].retriable
    except ValueError:
        return False
