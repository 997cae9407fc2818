//! Pure media core: H.264 bitstream helpers, a Matroska demuxer and a fragmented MP4 writer.

pub mod decode;
pub mod h264;
pub mod image;
pub mod mkv;
pub mod mp4;
