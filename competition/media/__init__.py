"""Media decoding shared by the feature extractors (video frames with container timestamps)."""
from competition.media.video import (SCHEMES, VideoFrames, decode_frames, frame_times, read_sampled,
                                     sample_times)

__all__ = ["SCHEMES", "VideoFrames", "decode_frames", "frame_times", "read_sampled", "sample_times"]
