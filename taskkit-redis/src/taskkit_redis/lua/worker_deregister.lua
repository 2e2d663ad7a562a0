-- worker_deregister: remove a worker's entry (Backend.deregister_worker); idempotent.
-- KEYS[1] the registry, KEYS[2] the worker's hash, ARGV[1] id.
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1
