# pragma version ~=0.4.3
# keys.vy with the job state it reads: the job word and trainer words are written directly
import jobs
import keys

initializes: jobs
initializes: keys[jobs := jobs]

exports: (keys.reveal, keys.public_key)


@external
def set_job(job_id: uint256, word: uint256):
    jobs._job[job_id] = word


@external
def set_trainer(job_id: uint256, trainer: address, word: uint256):
    jobs._trainer[job_id][trainer] = word
