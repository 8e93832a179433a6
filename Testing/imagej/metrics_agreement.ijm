// ImageJ reference measurements for Testing/test_metrics_imagej.py (run once per test session, headless):
//   java -Djava.awt.headless=true -jar ij.jar -batch metrics_agreement.ijm CASES.txt
// CASES.txt lines:  image PATH WIDTH HEIGHT    (raw little-endian 32-bit float)
//                   line X1 Y1 X2 Y2           (ImageJ pixel coordinates)
//                   oval X Y W H               (bounding box, pixel corners at integers)
// Output lines:     LINE index n v1 v2 ...   /   OVAL index area mean sd   (sd with n - 1, as ImageJ)
setBatchMode(true);
lines = split(File.openAsString(getArgument()), "\n");
index = 0;
for (c = 0; c < lines.length; c++) {
    f = split(lines[c], " ");
    if (f.length == 0 || f[0] == "") continue;
    if (f[0] == "image") {
        if (nImages > 0) close();
        run("Raw...", "open=[" + f[1] + "] image=[32-bit Real] width=" + f[2] + " height=" + f[3] + " number=1 little-endian");
    } else if (f[0] == "line") {
        makeLine(parseFloat(f[1]), parseFloat(f[2]), parseFloat(f[3]), parseFloat(f[4]));
        p = getProfile();
        s = "LINE " + index + " " + p.length;
        for (i = 0; i < p.length; i++) s = s + " " + d2s(p[i], 9);
        print(s);
        index++;
    } else if (f[0] == "oval") {
        makeOval(parseFloat(f[1]), parseFloat(f[2]), parseFloat(f[3]), parseFloat(f[4]));
        getStatistics(area, mean, min, max, sd);
        Roi.getContainedPoints(xs, ys);
        print("OVAL " + index + " " + xs.length + " " + d2s(mean, 9) + " " + d2s(sd, 9));
        index++;
    }
}
