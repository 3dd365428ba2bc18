"""API keys, supported versions, and the shape of every request and response body.

Bodies are msgpack maps with string keys, so a newer peer may add keys an older one ignores
(old clients keep working). Repeated entries are lists of maps. Record batches never appear in a
body: a body gives their sizes and the bytes follow in the frame payload, in body order.
A request-level failure (unknown api, unsupported version, malformed body) is answered with
``{"error_code": int, "error_message": str}`` as the whole body.

Broker APIs (version 0 unless noted)::

  PRODUCE         {acks, timeout_ms, topics: [{topic, partitions: [{partition, size}]}]}
                  + payload: the partitions' batch bytes, concatenated in order.
                  acks=0 gets no response at all.
               -> {topics: [{topic, partitions: [{partition, error_code, error_message,
                  base_offset, log_append_time, log_start_offset}]}]}
  FETCH           {replica_id, max_wait_ms, min_bytes, max_bytes,
                   topics: [{topic, partitions: [{partition, fetch_offset,
                   partition_max_bytes, current_leader_epoch (optional, -1: unchecked)}]}]}
               -> {error_code, topics: [{topic, partitions: [{partition, error_code,
                  high_watermark, log_start_offset, log_end_offset, records_size}]}]}
                  + payload: each partition's records_size bytes of whole batches, in order.
                  A consumer (replica_id -1) gets batches below the high watermark; a
                  follower (replica_id = its broker id) gets everything up to the log end,
                  and its fetch_offset tells the leader how far it has replicated.
                  log_end_offset is given to followers only.
  LIST_OFFSETS    {topics: [{topic, partitions: [{partition, timestamp}]}]}
                  timestamp LATEST (-1), EARLIEST (-2), or a time in ms
               -> {topics: [{topic, partitions: [{partition, error_code, timestamp, offset}]}]}
  METADATA        {topics: [name] | None (all), allow_auto_topic_creation}
               -> {cluster_id, controller_id, brokers: [{node_id, host, port, rack}] (live),
                  topics: [{topic, error_code, is_internal, partitions: [{partition,
                  error_code, leader, leader_epoch, replicas, isr, offline_replicas}]}]}
  API_VERSIONS    {} -> {error_code, api_keys: [[api_key, min_version, max_version]]}
  CREATE_TOPICS   {topics: [{topic, num_partitions, replication_factor, configs: {k: v},
                   assignment: {partition: [broker ids]} | None}], timeout_ms, validate_only}
                  The answer waits (up to timeout_ms) until every partition has a leader.
               -> {topics: [{topic, error_code, error_message}]}
  DELETE_TOPICS   {topics: [name], timeout_ms} -> {topics: [{topic, error_code, error_message}]}
  CREATE_PARTITIONS {topics: [{topic, count, assignment: [[broker ids]] | None}], timeout_ms,
                  validate_only}
                  count is the new total; assignment has one replica list per new partition.
                  The answer waits (up to timeout_ms) until every new partition has a leader.
               -> {topics: [{topic, error_code, error_message}]}
  DESCRIBE_CONFIGS {resources: [{type: "topic"|"broker", name}]}
               -> {resources: [{type, name, error_code, error_message,
                  configs: [{name, value, source: "default"|"broker"|"topic", read_only}]}]}
  ALTER_CONFIGS   {resources: [{type, name, configs: {k: v | None}}], validate_only}
                  incremental: a None value removes the topic's override
               -> {resources: [{type, name, error_code, error_message}]}
  ELECT_LEADERS   {election_type: 0 (preferred) | 1 (unclean), topic_partitions:
                  [{topic, partitions: [int]}] | None (every partition)}
                  Answered by the controller only (others: NOT_CONTROLLER), once the
                  elections are written.
               -> {error_code, error_message, results: [{topic, partitions: [{partition,
                  error_code, error_message}]}]}  ELECTION_NOT_NEEDED where the chosen
                  leader already leads; with topic_partitions None only partitions where an
                  election was needed are listed.
  ALTER_PARTITION_REASSIGNMENTS {topics: [{topic, partitions: [{partition, replicas}]}]}
                  Starts moving each partition to ``replicas`` (the controller finishes it
                  once they are all in sync); a null ``replicas`` (cancel) is refused.
               -> {error_code, topics: [{topic, partitions: [{partition, error_code,
                  error_message}]}]}
  LIST_PARTITION_REASSIGNMENTS {} -> {error_code, topics: [{topic, partitions: [{partition,
                  replicas (now, target first), target}]}]}
  DESCRIBE_CLUSTER {} -> {error_code, cluster_id, controller_id, controller_epoch,
                  brokers: [{node_id, host, port, rack, live}]}
                  Dead brokers are those that hold replicas but are not registered; their
                  host is "" and port -1 when the answering broker never saw them live.

Inter-broker APIs (LEADER_AND_ISR, UPDATE_METADATA, STOP_REPLICA, CONTROLLED_SHUTDOWN,
ALTER_PARTITION, OFFSET_FOR_LEADER_EPOCH) have typed bodies in ``protocol.cluster_api``. A
broker sends them only on a connection it has authenticated first with SASL_AUTHENTICATE
(Klamm's own mechanism, ``protocol.peer_auth``); so does a follower's FETCH.
"""

from __future__ import annotations

from enum import IntEnum


class ApiKey(IntEnum):
    PRODUCE = 0
    FETCH = 1
    LIST_OFFSETS = 2
    METADATA = 3
    LEADER_AND_ISR = 4
    STOP_REPLICA = 5
    UPDATE_METADATA = 6
    CONTROLLED_SHUTDOWN = 7
    OFFSET_COMMIT = 8
    OFFSET_FETCH = 9
    FIND_COORDINATOR = 10
    JOIN_GROUP = 11
    HEARTBEAT = 12
    LEAVE_GROUP = 13
    SYNC_GROUP = 14
    DESCRIBE_GROUPS = 15
    LIST_GROUPS = 16
    API_VERSIONS = 18
    CREATE_TOPICS = 19
    DELETE_TOPICS = 20
    INIT_PRODUCER_ID = 22
    OFFSET_FOR_LEADER_EPOCH = 23
    DESCRIBE_CONFIGS = 32
    ALTER_CONFIGS = 33
    SASL_AUTHENTICATE = 36
    CREATE_PARTITIONS = 37
    ELECT_LEADERS = 43
    ALTER_PARTITION_REASSIGNMENTS = 45
    LIST_PARTITION_REASSIGNMENTS = 46
    ALTER_PARTITION = 56
    DESCRIBE_CLUSTER = 60


# ListOffsets special timestamps.
LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2

# ElectLeaders election types (Kafka's).
PREFERRED_ELECTION = 0
UNCLEAN_ELECTION = 1

# Fetch replica_id of an ordinary consumer (followers send their broker id).
CONSUMER_REPLICA_ID = -1
