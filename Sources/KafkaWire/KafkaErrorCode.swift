/// A Kafka error code (`org.apache.kafka.common.protocol.Errors`, Kafka 3.9). `description` gives
/// Kafka's UPPER_SNAKE name. Unknown codes are representable and print as `UNKNOWN_ERROR_CODE(<n>)`.
public struct KafkaErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: Int16

    public init(rawValue: Int16) {
        self.rawValue = rawValue
    }

    public init(_ rawValue: Int16) {
        self.rawValue = rawValue
    }

    public static let unknownServerError = KafkaErrorCode(rawValue: -1)
    public static let none = KafkaErrorCode(rawValue: 0)
    public static let offsetOutOfRange = KafkaErrorCode(rawValue: 1)
    public static let corruptMessage = KafkaErrorCode(rawValue: 2)
    public static let unknownTopicOrPartition = KafkaErrorCode(rawValue: 3)
    public static let invalidFetchSize = KafkaErrorCode(rawValue: 4)
    public static let leaderNotAvailable = KafkaErrorCode(rawValue: 5)
    public static let notLeaderOrFollower = KafkaErrorCode(rawValue: 6)
    public static let requestTimedOut = KafkaErrorCode(rawValue: 7)
    public static let brokerNotAvailable = KafkaErrorCode(rawValue: 8)
    public static let replicaNotAvailable = KafkaErrorCode(rawValue: 9)
    public static let messageTooLarge = KafkaErrorCode(rawValue: 10)
    public static let staleControllerEpoch = KafkaErrorCode(rawValue: 11)
    public static let offsetMetadataTooLarge = KafkaErrorCode(rawValue: 12)
    public static let networkException = KafkaErrorCode(rawValue: 13)
    public static let coordinatorLoadInProgress = KafkaErrorCode(rawValue: 14)
    public static let coordinatorNotAvailable = KafkaErrorCode(rawValue: 15)
    public static let notCoordinator = KafkaErrorCode(rawValue: 16)
    public static let invalidTopicException = KafkaErrorCode(rawValue: 17)
    public static let recordListTooLarge = KafkaErrorCode(rawValue: 18)
    public static let notEnoughReplicas = KafkaErrorCode(rawValue: 19)
    public static let notEnoughReplicasAfterAppend = KafkaErrorCode(rawValue: 20)
    public static let invalidRequiredAcks = KafkaErrorCode(rawValue: 21)
    public static let illegalGeneration = KafkaErrorCode(rawValue: 22)
    public static let inconsistentGroupProtocol = KafkaErrorCode(rawValue: 23)
    public static let invalidGroupId = KafkaErrorCode(rawValue: 24)
    public static let unknownMemberId = KafkaErrorCode(rawValue: 25)
    public static let invalidSessionTimeout = KafkaErrorCode(rawValue: 26)
    public static let rebalanceInProgress = KafkaErrorCode(rawValue: 27)
    public static let invalidCommitOffsetSize = KafkaErrorCode(rawValue: 28)
    public static let topicAuthorizationFailed = KafkaErrorCode(rawValue: 29)
    public static let groupAuthorizationFailed = KafkaErrorCode(rawValue: 30)
    public static let clusterAuthorizationFailed = KafkaErrorCode(rawValue: 31)
    public static let invalidTimestamp = KafkaErrorCode(rawValue: 32)
    public static let unsupportedSaslMechanism = KafkaErrorCode(rawValue: 33)
    public static let illegalSaslState = KafkaErrorCode(rawValue: 34)
    public static let unsupportedVersion = KafkaErrorCode(rawValue: 35)
    public static let topicAlreadyExists = KafkaErrorCode(rawValue: 36)
    public static let invalidPartitions = KafkaErrorCode(rawValue: 37)
    public static let invalidReplicationFactor = KafkaErrorCode(rawValue: 38)
    public static let invalidReplicaAssignment = KafkaErrorCode(rawValue: 39)
    public static let invalidConfig = KafkaErrorCode(rawValue: 40)
    public static let notController = KafkaErrorCode(rawValue: 41)
    public static let invalidRequest = KafkaErrorCode(rawValue: 42)
    public static let unsupportedForMessageFormat = KafkaErrorCode(rawValue: 43)
    public static let policyViolation = KafkaErrorCode(rawValue: 44)
    public static let outOfOrderSequenceNumber = KafkaErrorCode(rawValue: 45)
    public static let duplicateSequenceNumber = KafkaErrorCode(rawValue: 46)
    public static let invalidProducerEpoch = KafkaErrorCode(rawValue: 47)
    public static let invalidTxnState = KafkaErrorCode(rawValue: 48)
    public static let invalidProducerIdMapping = KafkaErrorCode(rawValue: 49)
    public static let invalidTransactionTimeout = KafkaErrorCode(rawValue: 50)
    public static let concurrentTransactions = KafkaErrorCode(rawValue: 51)
    public static let transactionCoordinatorFenced = KafkaErrorCode(rawValue: 52)
    public static let transactionalIdAuthorizationFailed = KafkaErrorCode(rawValue: 53)
    public static let securityDisabled = KafkaErrorCode(rawValue: 54)
    public static let operationNotAttempted = KafkaErrorCode(rawValue: 55)
    public static let kafkaStorageError = KafkaErrorCode(rawValue: 56)
    public static let logDirNotFound = KafkaErrorCode(rawValue: 57)
    public static let saslAuthenticationFailed = KafkaErrorCode(rawValue: 58)
    public static let unknownProducerId = KafkaErrorCode(rawValue: 59)
    public static let reassignmentInProgress = KafkaErrorCode(rawValue: 60)
    public static let delegationTokenAuthDisabled = KafkaErrorCode(rawValue: 61)
    public static let delegationTokenNotFound = KafkaErrorCode(rawValue: 62)
    public static let delegationTokenOwnerMismatch = KafkaErrorCode(rawValue: 63)
    public static let delegationTokenRequestNotAllowed = KafkaErrorCode(rawValue: 64)
    public static let delegationTokenAuthorizationFailed = KafkaErrorCode(rawValue: 65)
    public static let delegationTokenExpired = KafkaErrorCode(rawValue: 66)
    public static let invalidPrincipalType = KafkaErrorCode(rawValue: 67)
    public static let nonEmptyGroup = KafkaErrorCode(rawValue: 68)
    public static let groupIdNotFound = KafkaErrorCode(rawValue: 69)
    public static let fetchSessionIdNotFound = KafkaErrorCode(rawValue: 70)
    public static let invalidFetchSessionEpoch = KafkaErrorCode(rawValue: 71)
    public static let listenerNotFound = KafkaErrorCode(rawValue: 72)
    public static let topicDeletionDisabled = KafkaErrorCode(rawValue: 73)
    public static let fencedLeaderEpoch = KafkaErrorCode(rawValue: 74)
    public static let unknownLeaderEpoch = KafkaErrorCode(rawValue: 75)
    public static let unsupportedCompressionType = KafkaErrorCode(rawValue: 76)
    public static let staleBrokerEpoch = KafkaErrorCode(rawValue: 77)
    public static let offsetNotAvailable = KafkaErrorCode(rawValue: 78)
    public static let memberIdRequired = KafkaErrorCode(rawValue: 79)
    public static let preferredLeaderNotAvailable = KafkaErrorCode(rawValue: 80)
    public static let groupMaxSizeReached = KafkaErrorCode(rawValue: 81)
    public static let fencedInstanceId = KafkaErrorCode(rawValue: 82)
    public static let eligibleLeadersNotAvailable = KafkaErrorCode(rawValue: 83)
    public static let electionNotNeeded = KafkaErrorCode(rawValue: 84)
    public static let noReassignmentInProgress = KafkaErrorCode(rawValue: 85)
    public static let groupSubscribedToTopic = KafkaErrorCode(rawValue: 86)
    public static let invalidRecord = KafkaErrorCode(rawValue: 87)
    public static let unstableOffsetCommit = KafkaErrorCode(rawValue: 88)
    public static let throttlingQuotaExceeded = KafkaErrorCode(rawValue: 89)
    public static let producerFenced = KafkaErrorCode(rawValue: 90)
    public static let resourceNotFound = KafkaErrorCode(rawValue: 91)
    public static let duplicateResource = KafkaErrorCode(rawValue: 92)
    public static let unacceptableCredential = KafkaErrorCode(rawValue: 93)
    public static let inconsistentVoterSet = KafkaErrorCode(rawValue: 94)
    public static let invalidUpdateVersion = KafkaErrorCode(rawValue: 95)
    public static let featureUpdateFailed = KafkaErrorCode(rawValue: 96)
    public static let principalDeserializationFailure = KafkaErrorCode(rawValue: 97)
    public static let snapshotNotFound = KafkaErrorCode(rawValue: 98)
    public static let positionOutOfRange = KafkaErrorCode(rawValue: 99)
    public static let unknownTopicId = KafkaErrorCode(rawValue: 100)
    public static let duplicateBrokerRegistration = KafkaErrorCode(rawValue: 101)
    public static let brokerIdNotRegistered = KafkaErrorCode(rawValue: 102)
    public static let inconsistentTopicId = KafkaErrorCode(rawValue: 103)
    public static let inconsistentClusterId = KafkaErrorCode(rawValue: 104)
    public static let transactionalIdNotFound = KafkaErrorCode(rawValue: 105)
    public static let fetchSessionTopicIdError = KafkaErrorCode(rawValue: 106)
    public static let ineligibleReplica = KafkaErrorCode(rawValue: 107)
    public static let newLeaderElected = KafkaErrorCode(rawValue: 108)
    public static let offsetMovedToTieredStorage = KafkaErrorCode(rawValue: 109)
    public static let fencedMemberEpoch = KafkaErrorCode(rawValue: 110)
    public static let unreleasedInstanceId = KafkaErrorCode(rawValue: 111)
    public static let unsupportedAssignor = KafkaErrorCode(rawValue: 112)
    public static let staleMemberEpoch = KafkaErrorCode(rawValue: 113)
    public static let mismatchedEndpointType = KafkaErrorCode(rawValue: 114)
    public static let unsupportedEndpointType = KafkaErrorCode(rawValue: 115)
    public static let unknownControllerId = KafkaErrorCode(rawValue: 116)
    public static let unknownSubscriptionId = KafkaErrorCode(rawValue: 117)
    public static let telemetryTooLarge = KafkaErrorCode(rawValue: 118)
    public static let invalidRegistration = KafkaErrorCode(rawValue: 119)
    public static let transactionAbortable = KafkaErrorCode(rawValue: 120)
    public static let invalidRecordState = KafkaErrorCode(rawValue: 121)
    public static let shareSessionNotFound = KafkaErrorCode(rawValue: 122)
    public static let invalidShareSessionEpoch = KafkaErrorCode(rawValue: 123)
    public static let fencedStateEpoch = KafkaErrorCode(rawValue: 124)
    public static let invalidVoterKey = KafkaErrorCode(rawValue: 125)
    public static let duplicateVoter = KafkaErrorCode(rawValue: 126)
    public static let voterNotFound = KafkaErrorCode(rawValue: 127)
    public static let invalidRegularExpression = KafkaErrorCode(rawValue: 128)

    /// Kafka's name, e.g. `UNKNOWN_TOPIC_OR_PARTITION`.
    public var name: String? {
        switch rawValue {
        case -1: return "UNKNOWN_SERVER_ERROR"
        case 0: return "NONE"
        case 1: return "OFFSET_OUT_OF_RANGE"
        case 2: return "CORRUPT_MESSAGE"
        case 3: return "UNKNOWN_TOPIC_OR_PARTITION"
        case 4: return "INVALID_FETCH_SIZE"
        case 5: return "LEADER_NOT_AVAILABLE"
        case 6: return "NOT_LEADER_OR_FOLLOWER"
        case 7: return "REQUEST_TIMED_OUT"
        case 8: return "BROKER_NOT_AVAILABLE"
        case 9: return "REPLICA_NOT_AVAILABLE"
        case 10: return "MESSAGE_TOO_LARGE"
        case 11: return "STALE_CONTROLLER_EPOCH"
        case 12: return "OFFSET_METADATA_TOO_LARGE"
        case 13: return "NETWORK_EXCEPTION"
        case 14: return "COORDINATOR_LOAD_IN_PROGRESS"
        case 15: return "COORDINATOR_NOT_AVAILABLE"
        case 16: return "NOT_COORDINATOR"
        case 17: return "INVALID_TOPIC_EXCEPTION"
        case 18: return "RECORD_LIST_TOO_LARGE"
        case 19: return "NOT_ENOUGH_REPLICAS"
        case 20: return "NOT_ENOUGH_REPLICAS_AFTER_APPEND"
        case 21: return "INVALID_REQUIRED_ACKS"
        case 22: return "ILLEGAL_GENERATION"
        case 23: return "INCONSISTENT_GROUP_PROTOCOL"
        case 24: return "INVALID_GROUP_ID"
        case 25: return "UNKNOWN_MEMBER_ID"
        case 26: return "INVALID_SESSION_TIMEOUT"
        case 27: return "REBALANCE_IN_PROGRESS"
        case 28: return "INVALID_COMMIT_OFFSET_SIZE"
        case 29: return "TOPIC_AUTHORIZATION_FAILED"
        case 30: return "GROUP_AUTHORIZATION_FAILED"
        case 31: return "CLUSTER_AUTHORIZATION_FAILED"
        case 32: return "INVALID_TIMESTAMP"
        case 33: return "UNSUPPORTED_SASL_MECHANISM"
        case 34: return "ILLEGAL_SASL_STATE"
        case 35: return "UNSUPPORTED_VERSION"
        case 36: return "TOPIC_ALREADY_EXISTS"
        case 37: return "INVALID_PARTITIONS"
        case 38: return "INVALID_REPLICATION_FACTOR"
        case 39: return "INVALID_REPLICA_ASSIGNMENT"
        case 40: return "INVALID_CONFIG"
        case 41: return "NOT_CONTROLLER"
        case 42: return "INVALID_REQUEST"
        case 43: return "UNSUPPORTED_FOR_MESSAGE_FORMAT"
        case 44: return "POLICY_VIOLATION"
        case 45: return "OUT_OF_ORDER_SEQUENCE_NUMBER"
        case 46: return "DUPLICATE_SEQUENCE_NUMBER"
        case 47: return "INVALID_PRODUCER_EPOCH"
        case 48: return "INVALID_TXN_STATE"
        case 49: return "INVALID_PRODUCER_ID_MAPPING"
        case 50: return "INVALID_TRANSACTION_TIMEOUT"
        case 51: return "CONCURRENT_TRANSACTIONS"
        case 52: return "TRANSACTION_COORDINATOR_FENCED"
        case 53: return "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"
        case 54: return "SECURITY_DISABLED"
        case 55: return "OPERATION_NOT_ATTEMPTED"
        case 56: return "KAFKA_STORAGE_ERROR"
        case 57: return "LOG_DIR_NOT_FOUND"
        case 58: return "SASL_AUTHENTICATION_FAILED"
        case 59: return "UNKNOWN_PRODUCER_ID"
        case 60: return "REASSIGNMENT_IN_PROGRESS"
        case 61: return "DELEGATION_TOKEN_AUTH_DISABLED"
        case 62: return "DELEGATION_TOKEN_NOT_FOUND"
        case 63: return "DELEGATION_TOKEN_OWNER_MISMATCH"
        case 64: return "DELEGATION_TOKEN_REQUEST_NOT_ALLOWED"
        case 65: return "DELEGATION_TOKEN_AUTHORIZATION_FAILED"
        case 66: return "DELEGATION_TOKEN_EXPIRED"
        case 67: return "INVALID_PRINCIPAL_TYPE"
        case 68: return "NON_EMPTY_GROUP"
        case 69: return "GROUP_ID_NOT_FOUND"
        case 70: return "FETCH_SESSION_ID_NOT_FOUND"
        case 71: return "INVALID_FETCH_SESSION_EPOCH"
        case 72: return "LISTENER_NOT_FOUND"
        case 73: return "TOPIC_DELETION_DISABLED"
        case 74: return "FENCED_LEADER_EPOCH"
        case 75: return "UNKNOWN_LEADER_EPOCH"
        case 76: return "UNSUPPORTED_COMPRESSION_TYPE"
        case 77: return "STALE_BROKER_EPOCH"
        case 78: return "OFFSET_NOT_AVAILABLE"
        case 79: return "MEMBER_ID_REQUIRED"
        case 80: return "PREFERRED_LEADER_NOT_AVAILABLE"
        case 81: return "GROUP_MAX_SIZE_REACHED"
        case 82: return "FENCED_INSTANCE_ID"
        case 83: return "ELIGIBLE_LEADERS_NOT_AVAILABLE"
        case 84: return "ELECTION_NOT_NEEDED"
        case 85: return "NO_REASSIGNMENT_IN_PROGRESS"
        case 86: return "GROUP_SUBSCRIBED_TO_TOPIC"
        case 87: return "INVALID_RECORD"
        case 88: return "UNSTABLE_OFFSET_COMMIT"
        case 89: return "THROTTLING_QUOTA_EXCEEDED"
        case 90: return "PRODUCER_FENCED"
        case 91: return "RESOURCE_NOT_FOUND"
        case 92: return "DUPLICATE_RESOURCE"
        case 93: return "UNACCEPTABLE_CREDENTIAL"
        case 94: return "INCONSISTENT_VOTER_SET"
        case 95: return "INVALID_UPDATE_VERSION"
        case 96: return "FEATURE_UPDATE_FAILED"
        case 97: return "PRINCIPAL_DESERIALIZATION_FAILURE"
        case 98: return "SNAPSHOT_NOT_FOUND"
        case 99: return "POSITION_OUT_OF_RANGE"
        case 100: return "UNKNOWN_TOPIC_ID"
        case 101: return "DUPLICATE_BROKER_REGISTRATION"
        case 102: return "BROKER_ID_NOT_REGISTERED"
        case 103: return "INCONSISTENT_TOPIC_ID"
        case 104: return "INCONSISTENT_CLUSTER_ID"
        case 105: return "TRANSACTIONAL_ID_NOT_FOUND"
        case 106: return "FETCH_SESSION_TOPIC_ID_ERROR"
        case 107: return "INELIGIBLE_REPLICA"
        case 108: return "NEW_LEADER_ELECTED"
        case 109: return "OFFSET_MOVED_TO_TIERED_STORAGE"
        case 110: return "FENCED_MEMBER_EPOCH"
        case 111: return "UNRELEASED_INSTANCE_ID"
        case 112: return "UNSUPPORTED_ASSIGNOR"
        case 113: return "STALE_MEMBER_EPOCH"
        case 114: return "MISMATCHED_ENDPOINT_TYPE"
        case 115: return "UNSUPPORTED_ENDPOINT_TYPE"
        case 116: return "UNKNOWN_CONTROLLER_ID"
        case 117: return "UNKNOWN_SUBSCRIPTION_ID"
        case 118: return "TELEMETRY_TOO_LARGE"
        case 119: return "INVALID_REGISTRATION"
        case 120: return "TRANSACTION_ABORTABLE"
        case 121: return "INVALID_RECORD_STATE"
        case 122: return "SHARE_SESSION_NOT_FOUND"
        case 123: return "INVALID_SHARE_SESSION_EPOCH"
        case 124: return "FENCED_STATE_EPOCH"
        case 125: return "INVALID_VOTER_KEY"
        case 126: return "DUPLICATE_VOTER"
        case 127: return "VOTER_NOT_FOUND"
        case 128: return "INVALID_REGULAR_EXPRESSION"
        default: return nil
        }
    }

    public var description: String { name ?? "UNKNOWN_ERROR_CODE(\(rawValue))" }

    /// Whether Kafka's client treats the error as retriable (a RetriableException subclass).
    public var isRetriable: Bool {
        switch rawValue {
        case 2, 3, 5, 6, 7, 9, 13, 14, 15, 16, 19, 20, 51, 56, 70, 71, 72, 74, 75, 78, 88, 89, 100, 103, 106: return true
        default: return false
        }
    }
}
