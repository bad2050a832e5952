import CommitLog
import KafkaWire
import Logging

extension Broker {
    /// InitProducerId for idempotent, non-transactional producers (Kafka `handleInitProducerId`):
    ///
    /// - no transactional id: a new producer id (never reused across restarts, see
    ///   `ProducerIdAllocator`) with epoch 0;
    /// - v3+ carrying the producer's current {ProducerId, ProducerEpoch} (KIP-360 epoch bump): the
    ///   same id with epoch + 1, or a new id with epoch 0 when the epoch is exhausted
    ///   (>= `Int16.max - 1`, Kafka's rule) or the id was never issued here;
    /// - a transactional id: TRANSACTIONAL_ID_AUTHORIZATION_FAILED — there is no transaction
    ///   coordinator (an empty one is INVALID_REQUEST, as in Kafka).
    func handleInitProducerId(_ context: RequestContext, _ request: InitProducerIdRequest) -> InitProducerIdResponse {
        if let transactionalId = request.transactionalId {
            if transactionalId.isEmpty {
                return InitProducerIdResponse(errorCode: KafkaErrorCode.invalidRequest.rawValue, producerId: -1, producerEpoch: -1)
            }
            logger.warning(
                "InitProducerId with a transactional id refused: transactions are not supported (no transaction coordinator)",
                metadata: ["transactionalId": "\(transactionalId)", "clientId": "\(context.header.clientId ?? "")"])
            return InitProducerIdResponse(
                errorCode: KafkaErrorCode.transactionalIdAuthorizationFailed.rawValue, producerId: -1, producerEpoch: -1)
        }
        do {
            if request.producerId >= 0, request.producerEpoch >= 0, request.producerEpoch < Int16.max - 1,
                try logManager.producerIds.wasIssued(request.producerId)
            {
                return InitProducerIdResponse(errorCode: 0, producerId: request.producerId, producerEpoch: request.producerEpoch + 1)
            }
            return InitProducerIdResponse(errorCode: 0, producerId: try logManager.producerIds.allocate(), producerEpoch: 0)
        } catch {
            logger.error("could not allocate a producer id", metadata: ["error": "\(error)"])
            return InitProducerIdResponse(errorCode: KafkaErrorCode.coordinatorNotAvailable.rawValue, producerId: -1, producerEpoch: -1)
        }
    }
}
