//! Playback over HTTP: video list, recorded time ranges, HLS playlists, MP4 export and the player page.
