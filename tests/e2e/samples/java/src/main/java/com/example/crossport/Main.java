package com.example.crossport;

/** Prints the architecture the JVM runs on: amd64, aarch64 or arm. */
public final class Main {
    private Main() {}

    public static void main(String[] args) {
        System.out.println(System.getProperty("os.arch"));
    }
}
